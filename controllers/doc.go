// Package controllers holds sigwatch's reconcilers: pods to SignedImages, SignedImage verification and
// ImageSignaturePolicy status. They gather inputs, call the verification engine under internal/, and
// write status; decisions live in pure functions.
package controllers

// RBAC: the +kubebuilder:rbac markers sit beside the code that needs each permission; `make manifests`
// turns them into config/rbac/role.yaml. Secrets and ConfigMaps are read for trust roots, keys and image
// pull secrets (their metadata is watched; their content is read when it changed).
//
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
