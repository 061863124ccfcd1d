package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TransparencyLogStatus is what sigwatch has verified of one transparency log: the last checkpoint whose
// signature and consistency with every earlier one it checked, and, when the log was ever shown
// inconsistent, the two signed checkpoints that prove it.
type TransparencyLogStatus struct {
	// conditions are Consistent (True while every checkpoint seen is consistent with the last verified
	// one; False, reason LogInconsistent, from the moment two signed checkpoints disagree, until the
	// TransparencyLog is deleted) and Ready (True when the last checkpoint was read and verified; False,
	// reason LogUnavailable, when it could not be read or its signature does not verify).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// origin is the log's checkpoint origin, the first line of its signed notes (for Rekor v2, the host
	// of its baseUrl, for example `log2025-1.rekor.sigstore.dev`).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Origin string `json:"origin,omitempty"`

	// logID is the log's ID in the trust root (hex sha256 of its public key).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	LogID string `json:"logID,omitempty"`

	// url is where the checkpoint and tiles are read (C2SP tlog-tiles).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	URL string `json:"url,omitempty"`

	// treeSize is the size of the last verified checkpoint.
	// +optional
	// +kubebuilder:validation:Minimum=0
	TreeSize *int64 `json:"treeSize,omitempty"`

	// rootHash is the root hash of the last verified checkpoint (base64, as in the note).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	RootHash string `json:"rootHash,omitempty"`

	// checkpoint is the last verified checkpoint, its signed note as the log served it. The next
	// checkpoint is proven consistent with it, also after a restart or by another replica.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=16384
	Checkpoint string `json:"checkpoint,omitempty"`

	// lastVerifiedTime is when checkpoint was first verified (its signature, and its consistency with the
	// one before): a log that still serves older checkpoints --transparency-log-rollback-grace after it is
	// rolled back.
	// +optional
	LastVerifiedTime *metav1.Time `json:"lastVerifiedTime,omitempty"`

	// lastCheckedTime is when the log's checkpoint was last read.
	// +optional
	LastCheckedTime *metav1.Time `json:"lastCheckedTime,omitempty"`

	// inconsistency is, when set, the proof that the log showed two views that cannot both be true: kept
	// until the TransparencyLog is deleted.
	// +optional
	Inconsistency *LogInconsistency `json:"inconsistency,omitzero"` //nolint:kubeapilinter // a pointer: absent and present are told apart in Go by nil, as everywhere in sigwatch
}

// LogInconsistencyKind says how two checkpoints disagree.
// +kubebuilder:validation:Enum=Fork;Rollback
type LogInconsistencyKind string

const (
	// LogFork: a checkpoint of the same size with another root hash, or a larger one that is not
	// consistent with the trusted one (no valid consistency proof): a split view.
	LogFork LogInconsistencyKind = "Fork"
	// LogRollback: a checkpoint smaller than the trusted one: the log (or whoever serves it) showed an
	// older tree after a newer one.
	LogRollback LogInconsistencyKind = "Rollback"
)

// LogInconsistency is the evidence of an inconsistent log: two checkpoints, both signed with the log's
// key, that cannot both be views of one append-only log. Anyone can check them with the log's key.
type LogInconsistency struct {
	// kind is Fork or Rollback.
	// +required
	Kind LogInconsistencyKind `json:"kind,omitempty"`

	// detectedTime is when sigwatch found it.
	// +optional
	DetectedTime *metav1.Time `json:"detectedTime,omitempty"`

	// message says what was checked and failed.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`

	// trustedCheckpoint is the checkpoint sigwatch had verified before (signed note).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=16384
	TrustedCheckpoint string `json:"trustedCheckpoint,omitempty"`

	// conflictingCheckpoint is the checkpoint, signed with the same key, that contradicts it.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=16384
	ConflictingCheckpoint string `json:"conflictingCheckpoint,omitempty"`
}

// TransparencyLog is sigwatch's view of one transparency log that the signatures of running images are
// in: written by sigwatch only (it has no spec). sigwatch creates one per log the first time it checks an
// entry of that log online (see transparencyLog.online in ImageSignaturePolicy), named after the log's
// origin and ID. Deleting it makes sigwatch start over: the next checkpoint is trusted on first use.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=tlog,categories=sigwatch
// +kubebuilder:printcolumn:name="Origin",type=string,JSONPath=`.status.origin`
// +kubebuilder:printcolumn:name="Size",type=integer,JSONPath=`.status.treeSize`
// +kubebuilder:printcolumn:name="Consistent",type=string,JSONPath=`.status.conditions[?(@.type=="Consistent")].status`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Checked",type=date,JSONPath=`.status.lastCheckedTime`
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.url`,priority=1
type TransparencyLog struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// status is what sigwatch verified of the log.
	// +optional
	Status TransparencyLogStatus `json:"status,omitzero"` //nolint:kubeapilinter // a value, as in every kubebuilder API; written by the controller only
}

// TransparencyLogList is a list of TransparencyLog.
// +kubebuilder:object:root=true
type TransparencyLogList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the TransparencyLogs.
	Items []TransparencyLog `json:"items"`
}

func init() {
	SchemeBuilder.Register(&TransparencyLog{}, &TransparencyLogList{})
}
