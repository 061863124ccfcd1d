// Package v1alpha1 contains the sigwatch.dev/v1alpha1 API: ImageSignaturePolicy, which says which image
// repositories must be signed by whom, and SignedImage, the verdict on one running image digest.
//
// +kubebuilder:object:generate=true
// +groupName=sigwatch.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "sigwatch.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this API with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this API to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
