package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SignedImageSpec names one image digest. Both fields are immutable: a SignedImage is about one digest
// for its whole life.
type SignedImageSpec struct {
	// image is the normalized image repository, without tag or digest, for example
	// `docker.io/library/nginx`, `ghcr.io/yourorg/app` or `[::1]:5000/team/app`: the registry host in
	// lower case, without the default port 443 or a trailing dot, docker.io for Docker Hub.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="self.matches('^([a-z0-9]([a-z0-9-]*[a-z0-9])?(\\\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*|\\\\[[a-f0-9:.]+\\\\])(:[1-9][0-9]{0,4})?(/[a-z0-9]+((\\\\.|_|__|-+)[a-z0-9]+)*)+$')",message="image is a normalized repository (registry/path), without tag or digest"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([^/]*\\\\.[^/]*|localhost|\\\\[[^/]*\\\\]):443/') && !self.matches('^(index\\\\.docker\\\\.io|registry-1\\\\.docker\\\\.io|registry\\\\.hub\\\\.docker\\\\.com)/') && !self.matches('^docker\\\\.io/[^/]+$')",message="image is written as sigwatch normalizes it: no default port 443, docker.io for Docker Hub, docker.io/library/ for its official images"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="image is immutable"
	Image string `json:"image,omitempty"`

	// digest is the manifest digest that is verified, `sha256:` and 64 hex characters. Tags are never
	// verified.
	// +required
	// +kubebuilder:validation:Pattern=`^sha256:[a-f0-9]{64}$`
	// +kubebuilder:validation:MinLength=71
	// +kubebuilder:validation:MaxLength=71
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="digest is immutable"
	Digest string `json:"digest,omitempty"`
}

// PolicyResultType is the verdict of one policy on an image.
// +kubebuilder:validation:Enum=Verified;Failed;Unknown;Exempt
type PolicyResultType string

const (
	// PolicyVerified: the policy is satisfied.
	PolicyVerified PolicyResultType = "Verified"
	// PolicyFailed: the image does not satisfy the policy.
	PolicyFailed PolicyResultType = "Failed"
	// PolicyUnknown: the verdict could not be reached.
	PolicyUnknown PolicyResultType = "Unknown"
	// PolicyExempt: an ImageSignatureExemption excludes the image from the policy; it was not judged.
	PolicyExempt PolicyResultType = "Exempt"
)

// ConditionStatus is the Verified condition status that the result gives: True (Verified), False
// (Failed) or Unknown (Unknown, Exempt).
func (r PolicyResultType) ConditionStatus() metav1.ConditionStatus {
	switch r {
	case PolicyVerified:
		return metav1.ConditionTrue
	case PolicyFailed:
		return metav1.ConditionFalse
	default:
		return metav1.ConditionUnknown
	}
}

// PolicyResult is the verdict of one ImageSignaturePolicy on the image.
type PolicyResult struct {
	// name of the ImageSignaturePolicy.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name,omitempty"`

	// result is Verified, Failed, Unknown or Exempt.
	// +required
	Result PolicyResultType `json:"result,omitempty"`

	// mode is the policy's mode when it was judged: Enforce, or Audit (its failure does not make the
	// image not Ready).
	// +optional
	Mode PolicyMode `json:"mode,omitempty"`

	// severity is the policy's severity when it was judged.
	// +optional
	Severity PolicySeverity `json:"severity,omitempty"`

	// exemption names the ImageSignatureExemption that excludes the image from the policy (result
	// Exempt).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Exemption string `json:"exemption,omitempty"`

	// reason is one of the Verified condition's reasons.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Reason string `json:"reason,omitempty"`

	// revocation names the SignatureRevocation that revoked what the policy accepted (reason
	// SignatureRevoked): the image's signatures, or the attestations it requires.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Revocation string `json:"revocation,omitempty"`

	// message says why, in one line.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`

	// authority is the name of the authority whose signer satisfied the policy.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Authority string `json:"authority,omitempty"`

	// fingerprint identifies the policy content, keys and trust root the result was reached with. When
	// it changes, the image is verified again at once.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Fingerprint string `json:"fingerprint,omitempty"`
}

// SignatureFormat is how a signature is stored in the registry.
// +kubebuilder:validation:Enum=bundle;legacy
type SignatureFormat string

const (
	// SignatureFormatBundle: a Sigstore bundle stored as an OCI 1.1 referrer (cosign v3's default).
	SignatureFormatBundle SignatureFormat = "bundle"
	// SignatureFormatLegacy: cosign's `sha256-<hex>.sig` tag with simple-signing layers.
	SignatureFormatLegacy SignatureFormat = "legacy"
)

// SignatureInfo describes one signature that was examined.
type SignatureInfo struct {
	// format is bundle or legacy.
	// +required
	Format SignatureFormat `json:"format,omitempty"`

	// predicateType is the in-toto predicate type of an attestation (status.attestations only).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	PredicateType string `json:"predicateType,omitempty"`

	// verdict says whether a policy accepted the signature. The claims shown of a Rejected signature
	// (subject, issuer, workflow) are what its certificate says, unverified: they help find out why
	// it was not accepted, and prove nothing.
	// +required
	Verdict SignatureVerdict `json:"verdict,omitempty"`

	// reason a Rejected signature was not accepted, as a Verified condition reason (for example
	// UntrustedSigner, InvalidSignature, TrustRootMismatch, TransparencyLogMissing, RegistryUnavailable).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Reason string `json:"reason,omitempty"`

	// authority is the policy authority that accepted the signature.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Authority string `json:"authority,omitempty"`

	// subject is the certificate's identity (SAN) for keyless signatures (cut at 1024 characters).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Subject string `json:"subject,omitempty"`

	// issuer is the OIDC issuer of the certificate for keyless signatures (cut at 1024 characters).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Issuer string `json:"issuer,omitempty"`

	// keyID identifies the public key for key-based signatures (hex sha256 of its DER form).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	KeyID string `json:"keyID,omitempty"`

	// githubWorkflowRepository is the GitHub repository claim of the certificate (cut at 512
	// characters).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	GitHubWorkflowRepository string `json:"githubWorkflowRepository,omitempty"`

	// githubWorkflowRef is the GitHub ref claim of the certificate (cut at 512 characters).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	GitHubWorkflowRef string `json:"githubWorkflowRef,omitempty"`

	// claims are the Fulcio claims of the certificate of a keyless signature (each cut at 512
	// characters), named as an identity's claims and claimsRegExp name them, so that a policy can be
	// written from them. Verified for an Accepted signature; what the certificate says, unverified, for a
	// Rejected one.
	// +optional
	Claims *CertificateClaims `json:"claims,omitzero"` //nolint:kubeapilinter // a pointer: absent and present are told apart in Go by nil, as everywhere in sigwatch

	// transparencyLogIndex is the index of the signature's transparency log entry that verification
	// accepted (Accepted signatures only).
	// +optional
	TransparencyLogIndex *int64 `json:"transparencyLogIndex,omitempty"`

	// transparencyLog is the name of the TransparencyLog that holds the entry (Accepted signatures only).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	TransparencyLog string `json:"transparencyLog,omitempty"`

	// inclusion is the last live check of the entry in its log (policies whose transparencyLog.online is
	// not Off).
	// +optional
	Inclusion *LogInclusion `json:"inclusion,omitzero"` //nolint:kubeapilinter // a pointer: absent and present are told apart in Go by nil, as everywhere in sigwatch

	// integratedTime is when the transparency log integrated the entry.
	// +optional
	IntegratedTime *metav1.Time `json:"integratedTime,omitempty"`

	// timestampTime is the time certified by a timestamp authority.
	// +optional
	TimestampTime *metav1.Time `json:"timestampTime,omitempty"` //nolint:kubeapilinter // the time a timestamp authority certified: "timestamp" is the thing, not a naming habit

	// signedTime is the signature's trusted signing time: the earliest time a transparency log (its
	// signed entry timestamp) or a timestamp authority certified, never the signature's own claim
	// (Accepted signatures, and those a SignatureRevocation or maxSignatureAge rejected). Absent: no
	// trusted time (a key signature without a log entry or timestamp).
	// +optional
	SignedTime *metav1.Time `json:"signedTime,omitempty"`

	// signedTimeSource says what certified signedTime: TransparencyLog or TimestampAuthority.
	// +optional
	SignedTimeSource SignedTimeSource `json:"signedTimeSource,omitempty"`

	// revocation names the SignatureRevocation that revoked the signature (reason SignatureRevoked).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Revocation string `json:"revocation,omitempty"`

	// signedDigest is the digest the signature is over when it is not the image's own: the image index,
	// pinned in the pod spec, that lists the platform manifest the runtime runs.
	// +optional
	// +kubebuilder:validation:MinLength=71
	// +kubebuilder:validation:MaxLength=71
	SignedDigest string `json:"signedDigest,omitempty"`

	// signatureDigest is the digest of the manifest that holds the signature.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=135
	SignatureDigest string `json:"signatureDigest,omitempty"`
}

// SignedTimeSource is what certified a signature's signing time.
// +kubebuilder:validation:Enum=TransparencyLog;TimestampAuthority
type SignedTimeSource string

const (
	// SignedTimeTransparencyLog: the integrated time of a transparency log entry, signed by the log.
	SignedTimeTransparencyLog SignedTimeSource = "TransparencyLog"
	// SignedTimeTimestampAuthority: an RFC 3161 timestamp of a timestamp authority of the trust root.
	SignedTimeTimestampAuthority SignedTimeSource = "TimestampAuthority"
)

// LogInclusion is the result of a live check of a signature's entry in its transparency log.
type LogInclusion struct {
	// result is InLog, NotInLog, Inconsistent or Unavailable.
	// +required
	Result LogInclusionResult `json:"result,omitempty"`

	// treeSize is the size of the log's tree the entry was proven in (result InLog).
	// +optional
	// +kubebuilder:validation:Minimum=1
	TreeSize int64 `json:"treeSize,omitempty"`

	// checkedTime is when the check was made.
	// +optional
	CheckedTime *metav1.Time `json:"checkedTime,omitempty"`

	// message says what was proven or what failed.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// LogInclusionResult is the outcome of a live check of an entry.
// +kubebuilder:validation:Enum=InLog;NotInLog;Inconsistent;Unavailable
type LogInclusionResult string

const (
	// LogInclusionInLog: the entry is in the log's current signed tree, consistent with every earlier one.
	LogInclusionInLog LogInclusionResult = "InLog"
	// LogInclusionNotInLog: the current signed tree does not hold the entry.
	LogInclusionNotInLog LogInclusionResult = "NotInLog"
	// LogInclusionInconsistent: the log is inconsistent (see its TransparencyLog).
	LogInclusionInconsistent LogInclusionResult = "Inconsistent"
	// LogInclusionUnavailable: the log could not be read or verified.
	LogInclusionUnavailable LogInclusionResult = "Unavailable"
)

// SignatureVerdict says whether a signature was accepted.
// +kubebuilder:validation:Enum=Accepted;Rejected
type SignatureVerdict string

const (
	// SignatureAccepted: a policy authority accepted the signature; its claims and log entry are verified.
	SignatureAccepted SignatureVerdict = "Accepted"
	// SignatureRejected: no authority accepted it; its claims are unverified.
	SignatureRejected SignatureVerdict = "Rejected"
)

// WorkloadReference is a top-level owner of pods that run the image.
type WorkloadReference struct {
	// kind of the workload: Deployment, StatefulSet, DaemonSet, CronJob, Job, ReplicaSet or Pod (or
	// the kind of another controller that owns the pods).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Kind string `json:"kind,omitempty"`

	// name of the workload.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name,omitempty"`

	// containers that run the image (at most 64 listed).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	Containers []string `json:"containers,omitempty"`
}

// SignedImageSummary holds display strings for `kubectl get`. The API server prints one value per
// column, so lists are joined here. Nothing reads them back.
type SignedImageSummary struct {
	// shortDigest is the first 12 hex characters of the digest.
	// +optional
	// +kubebuilder:validation:MinLength=12
	// +kubebuilder:validation:MaxLength=12
	ShortDigest string `json:"shortDigest,omitempty"`

	// signer is who made the signature that satisfied the policies: the certificate subject, or "key "
	// and the first 12 hex digits of the key ID. When the image failed, it is who made the first
	// signature that was found and rejected, followed by " (not accepted)": unverified, a clue only.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Signer string `json:"signer,omitempty"`

	// policies are the names of the matching policies, comma-separated (cut at 1024 characters).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Policies string `json:"policies,omitempty"`

	// workloads are the kind/name of the workloads that run the image, comma-separated (cut at 256
	// characters).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Workloads string `json:"workloads,omitempty"`
}

// SignedImageStatus is the verdict on the image digest.
type SignedImageStatus struct {
	// conditions are Verified (True, False or Unknown with a reason), Ready (True when the image is
	// verified) and Stalled (True when the verdict is settled and not good, so that kstatus reports
	// Failed; a transient Unknown is retried and stays InProgress).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the generation of the spec that the status describes.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// summary repeats the status in the short strings that kubectl's columns show.
	// +optional
	Summary SignedImageSummary `json:"summary,omitzero"` //nolint:kubeapilinter // display strings, empty until the first visit

	// policies are the verdicts of the ImageSignaturePolicies that cover the image (at most 64 listed;
	// the verdict counts them all).
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Policies []PolicyResult `json:"policies,omitempty"`

	// signatures are the signatures examined at the last verification that reached a verdict (the
	// first 16, accepted ones first).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Signatures []SignatureInfo `json:"signatures,omitempty"`

	// attestations are the attestations that satisfied a required attestation of a policy at the last
	// verification that reached a verdict, and those that would have but were revoked or too old (the
	// first 16).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Attestations []SignatureInfo `json:"attestations,omitempty"`

	// workloads are the top-level owners of the pods that run the image (at most 256 listed).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	Workloads []WorkloadReference `json:"workloads,omitempty"`

	// indexDigests are the digests of image indexes that the specs of the pods running the image pin
	// (`image: REPO@sha256:INDEX`) when the runtime reports another digest: the platform manifest of a
	// multi-arch image. When the image has no signature of its own, the signatures of one of these that
	// lists it count (signatures[].signedDigest then names it). At most 4, sorted; a change verifies the
	// image again.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=4
	// +kubebuilder:validation:items:Pattern=`^sha256:[a-f0-9]{64}$`
	// +kubebuilder:validation:items:MaxLength=71
	IndexDigests []string `json:"indexDigests,omitempty"`

	// lastVerifiedTime is when the image was last found verified.
	// +optional
	LastVerifiedTime *metav1.Time `json:"lastVerifiedTime,omitempty"`

	// lastAttemptTime is when verification was last attempted.
	// +optional
	LastAttemptTime *metav1.Time `json:"lastAttemptTime,omitempty"`

	// nextVerificationTime is when the image will be verified again.
	// +optional
	NextVerificationTime *metav1.Time `json:"nextVerificationTime,omitempty"`

	// lastHandledReverify is the value of the sigwatch.dev/reverify annotation that was last acted on
	// (its sha256, "sha256:" and 64 hex digits, when the value is longer than 256 characters).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	LastHandledReverify string `json:"lastHandledReverify,omitempty"`

	// unusedSince is when the last pod that ran the digest went away. sigwatch deletes a SignedImage it
	// manages once it has been unused for the manager's --gc-grace.
	// +optional
	UnusedSince *metav1.Time `json:"unusedSince,omitempty"`
}

// SignedImage is the signature verdict on one image digest that runs (or will run) in its namespace.
// sigwatch creates one for every digest that pods run; people may create one by hand to check an image
// before it runs.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=si,categories=sigwatch
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.spec.image`
// +kubebuilder:printcolumn:name="Digest",type=string,JSONPath=`.status.summary.shortDigest`
// +kubebuilder:printcolumn:name="Verified",type=string,JSONPath=`.status.conditions[?(@.type=="Verified")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Verified")].reason`
// +kubebuilder:printcolumn:name="Signer",type=string,JSONPath=`.status.summary.signer`
// +kubebuilder:printcolumn:name="Checked",type=date,JSONPath=`.status.lastAttemptTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Last Verified",type=date,JSONPath=`.status.lastVerifiedTime`,priority=1
// +kubebuilder:printcolumn:name="Policies",type=string,JSONPath=`.status.summary.policies`,priority=1
// +kubebuilder:printcolumn:name="Workloads",type=string,JSONPath=`.status.summary.workloads`,priority=1
type SignedImage struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec names the image digest.
	// +required
	Spec SignedImageSpec `json:"spec,omitzero"`

	// status is the verdict.
	// +optional
	Status SignedImageStatus `json:"status,omitzero"` //nolint:kubeapilinter // a value, as in every kubebuilder API; written by the controller only
}

// SignedImageList is a list of SignedImage.
// +kubebuilder:object:root=true
type SignedImageList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the SignedImages.
	Items []SignedImage `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SignedImage{}, &SignedImageList{})
}
