package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SignatureRevocationSpec says which signatures no policy accepts any more, and why.
type SignatureRevocationSpec struct {
	// reason says why the signatures are revoked (an incident, a ticket): it is shown in the status of
	// every affected SignedImage, in its Events and in `sigwatch report`.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Reason string `json:"reason,omitempty"`

	// signatures are the revoked signatures: a signature (or attestation) matching any entry is revoked.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	Signatures []RevokedSignatures `json:"signatures,omitempty"` //nolint:kubeapilinter // each entry has exactly one of keyless, key or digests (CEL), so no one field is required
}

// RevokedSignatures is one entry of a revocation: exactly one of keyless (a signer identity), key (a
// public key) or digests (the image digests signed), and optionally a window of trusted signing time.
// +kubebuilder:validation:XValidation:rule="(has(self.keyless)?1:0)+(has(self.key)?1:0)+(has(self.digests)?1:0)==1",message="exactly one of keyless, key or digests must be set"
// +kubebuilder:validation:XValidation:rule="!has(self.signedAfter) || !has(self.signedBefore) || timestamp(self.signedAfter) < timestamp(self.signedBefore)",message="signedAfter must be before signedBefore"
type RevokedSignatures struct {
	// keyless revokes the signatures whose Fulcio certificate was issued to this identity: exactly one of
	// issuer or issuerRegExp and of subject or subjectRegExp, and optionally claims and claimsRegExp, as
	// in a policy's identities (regular expressions match the whole value).
	// +optional
	Keyless *Identity `json:"keyless,omitzero"` //nolint:kubeapilinter // a pointer: absent and present are told apart in Go by nil, as everywhere in sigwatch

	// key revokes the signatures made with this public key.
	// +optional
	Key *RevokedKey `json:"key,omitzero"` //nolint:kubeapilinter // a pointer: absent and present are told apart in Go by nil, as everywhere in sigwatch

	// digests revokes every signature of these image digests (`sha256:` and 64 hex characters): the
	// digest a signature is over, or the digest that runs.
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=71
	// +kubebuilder:validation:items:MaxLength=71
	// +kubebuilder:validation:items:Pattern=`^sha256:[a-f0-9]{64}$`
	// +listType=set
	Digests []string `json:"digests,omitempty"`

	// signedAfter limits the entry to signatures whose trusted signing time (a transparency log's or a
	// timestamp authority's, never the signature's own claim) is at or after it (RFC 3339). An entry with
	// a window never matches a signature without a trusted signing time.
	// +optional
	SignedAfter *metav1.Time `json:"signedAfter,omitempty"`

	// signedBefore limits the entry to signatures whose trusted signing time is before it (RFC 3339).
	// +optional
	SignedBefore *metav1.Time `json:"signedBefore,omitempty"`
}

// RevokedKey is a public key whose signatures are revoked.
type RevokedKey struct {
	// publicKey is the PEM public key.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=16384
	// +kubebuilder:validation:XValidation:rule="self.contains('-----BEGIN PUBLIC KEY-----') || self.contains('-----BEGIN RSA PUBLIC KEY-----')",message="publicKey must be a PEM public key (-----BEGIN PUBLIC KEY-----)"
	PublicKey string `json:"publicKey,omitempty"`
}

// RevokedImage is a SignedImage with a signature a revocation revoked.
type RevokedImage struct {
	// namespace of the SignedImage.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`

	// name of the SignedImage.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name,omitempty"`

	// image is the SignedImage's repository.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	Image string `json:"image,omitempty"`

	// digest is the SignedImage's digest.
	// +required
	// +kubebuilder:validation:MinLength=71
	// +kubebuilder:validation:MaxLength=71
	Digest string `json:"digest,omitempty"`
}

// SignatureRevocationStatus is what the revocation does.
type SignatureRevocationStatus struct {
	// conditions are Ready: True (Applied) when every entry compiled, False (InvalidRevocation) naming
	// the entry that did not (the others apply).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the generation of the spec that the status describes.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// affectedImages is the number of SignedImages with a signature or attestation the revocation
	// revoked, whether another signature still verifies them or not.
	// +optional
	// +kubebuilder:validation:Minimum=0
	AffectedImages *int32 `json:"affectedImages,omitempty"`

	// images are the first affected SignedImages, by namespace and name (at most 100 listed).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=100
	Images []RevokedImage `json:"images,omitempty"`
}

// SignatureRevocation revokes signatures: by signer identity or key, optionally only those made in a
// window of trusted signing time, or by image digest. No policy accepts a revoked signature or
// attestation, so every running image that rested on one turns Verified=False (SignatureRevoked) at once,
// while an image with another accepted signature stays verified. Kept in Git like policies;
// cluster-scoped, as they are.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=sigrev,categories=sigwatch
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Affected",type=integer,JSONPath=`.status.affectedImages`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.spec.reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SignatureRevocation struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says which signatures are revoked and why.
	// +required
	Spec SignatureRevocationSpec `json:"spec,omitzero"`

	// status is what the revocation does.
	// +optional
	Status SignatureRevocationStatus `json:"status,omitzero"` //nolint:kubeapilinter // a value, as in every kubebuilder API; written by the controller only
}

// SignatureRevocationList is a list of SignatureRevocation.
// +kubebuilder:object:root=true
type SignatureRevocationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the SignatureRevocations.
	Items []SignatureRevocation `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SignatureRevocation{}, &SignatureRevocationList{})
}
