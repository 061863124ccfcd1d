// Package controllers holds sigwatch's reconcilers: pods to SignedImages, SignedImage verification and
// ImageSignaturePolicy status. They gather inputs, call the verification engine under internal/, and
// write status; decisions live in pure functions.
package controllers

// RBAC of the manager, no wider than it needs. Secrets and ConfigMaps are read for trust roots, keys and
// image pull secrets.
//
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=configmaps;secrets;serviceaccounts;namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=replicasets,verbs=get;list;watch
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch
// +kubebuilder:rbac:groups=sigwatch.dev,resources=signedimages,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=sigwatch.dev,resources=signedimages/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=sigwatch.dev,resources=imagesignaturepolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=sigwatch.dev,resources=imagesignaturepolicies/status,verbs=get;update;patch
