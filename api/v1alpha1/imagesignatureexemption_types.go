package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ImageSignatureExemptionSpec says which images are not judged by which policies, why, and until when.
// An image is exempt when it matches every selector that is set (namespaces, images, digests); at least
// one must be set.
// +kubebuilder:validation:XValidation:rule="has(self.namespaces) || has(self.images) || has(self.digests)",message="an exemption needs at least one of namespaces, images or digests"
type ImageSignatureExemptionSpec struct {
	// reason says why the images are exempt (a ticket, an owner): it is shown in the status of every
	// exempted SignedImage and in PolicyReports.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Reason string `json:"reason,omitempty"`

	// expiresAt is when the exemption stops applying (RFC 3339, for example `2027-01-31T00:00:00Z`).
	// The images it exempted are judged again at that moment. Absent, it applies until deleted.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// policies are the names of the ImageSignaturePolicies the images are exempt from. Absent, they are
	// exempt from every policy.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=set
	Policies []string `json:"policies,omitempty"`

	// namespaces are the names of the namespaces whose images are exempt; `*` matches any run of
	// characters (`team-*`).
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9*]([-a-z0-9*]*[a-z0-9*])?$`
	// +listType=set
	Namespaces []string `json:"namespaces,omitempty"`

	// images are glob patterns over the normalized image repository, as in ImageSignaturePolicy's
	// spec.images.
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	Images []ImagePattern `json:"images,omitempty"`

	// digests are image digests (`sha256:` and 64 hex characters): only these digests are exempt, for
	// one known image rather than a repository.
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=71
	// +kubebuilder:validation:items:MaxLength=71
	// +kubebuilder:validation:items:Pattern=`^sha256:[a-f0-9]{64}$`
	// +listType=set
	Digests []string `json:"digests,omitempty"`
}

// ImageSignatureExemptionStatus is the observed state of an ImageSignatureExemption.
type ImageSignatureExemptionStatus struct {
	// conditions are Ready: True (Active) while the exemption applies, False (Expired) once expiresAt
	// has passed.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the generation of the spec that the status describes.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// ImageSignatureExemption excludes images from ImageSignaturePolicies, with a reason and an optional
// expiry, kept in Git like policies. Exempted images are reported as Exempt, never as verified. It is
// cluster-scoped, as policies are: exempting an image is a decision of whoever owns the policies, not of
// the namespace that runs it.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=isx,categories=sigwatch
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Expires",type=date,JSONPath=`.spec.expiresAt`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.spec.reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ImageSignatureExemption struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says what is exempt from which policies, why and until when.
	// +required
	Spec ImageSignatureExemptionSpec `json:"spec,omitzero"`

	// status is the observed state of the exemption.
	// +optional
	Status ImageSignatureExemptionStatus `json:"status,omitzero"` //nolint:kubeapilinter // a value, as in every kubebuilder API; written by the controller only
}

// ImageSignatureExemptionList is a list of ImageSignatureExemption.
// +kubebuilder:object:root=true
type ImageSignatureExemptionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the ImageSignatureExemptions.
	Items []ImageSignatureExemption `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ImageSignatureExemption{}, &ImageSignatureExemptionList{})
}
