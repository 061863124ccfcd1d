package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
)

// Field indexes.
const (
	// indexPodSignedImages indexes Pods by the names of the SignedImages of the digests they run.
	indexPodSignedImages = "sigwatch.dev/signedimages"
	// indexSignedImagePolicies indexes SignedImages by the policies in their status.
	indexSignedImagePolicies = "sigwatch.dev/policies"
	// indexPolicyReferences indexes ImageSignaturePolicies by the ConfigMaps and Secrets they read
	// ("ConfigMap/ns/name", "Secret/ns/name").
	indexPolicyReferences = "sigwatch.dev/references"
)

// fieldIndex is one field index: the objects it indexes, its name and its values.
type fieldIndex struct {
	obj     client.Object
	field   string
	extract client.IndexerFunc
}

// fieldIndexes are the indexes the controllers use (step tests give the same ones to the fake client).
func fieldIndexes() []fieldIndex {
	return []fieldIndex{
		{&corev1.Pod{}, indexPodSignedImages, func(o client.Object) []string {
			var names []string
			for _, ri := range podImages(o.(*corev1.Pod)) {
				names = append(names, signedImageName(ri.Image))
			}
			return names
		}},
		{&sigwatchv1alpha1.SignedImage{}, indexSignedImagePolicies, func(o client.Object) []string {
			var names []string
			for _, p := range o.(*sigwatchv1alpha1.SignedImage).Status.Policies {
				names = append(names, p.Name)
			}
			return names
		}},
		{&sigwatchv1alpha1.ImageSignaturePolicy{}, indexPolicyReferences, func(o client.Object) []string {
			return policyReferences(o.(*sigwatchv1alpha1.ImageSignaturePolicy))
		}},
	}
}

// SetupIndexes registers the field indexes the controllers use.
func SetupIndexes(ctx context.Context, mgr ctrl.Manager) error {
	for _, ix := range fieldIndexes() {
		if err := mgr.GetFieldIndexer().IndexField(ctx, ix.obj, ix.field, ix.extract); err != nil {
			return fmt.Errorf("index %s: %w", ix.field, err)
		}
	}
	return nil
}

func policyReferences(p *sigwatchv1alpha1.ImageSignaturePolicy) []string {
	var refs []string
	if tr := p.Spec.TrustedRoot; tr != nil {
		refs = append(refs, "ConfigMap/"+tr.ConfigMapRef.Namespace+"/"+tr.ConfigMapRef.Name)
	}
	for _, a := range p.Spec.Authorities {
		if a.Key != nil && a.Key.SecretRef != nil {
			refs = append(refs, "Secret/"+a.Key.SecretRef.Namespace+"/"+a.Key.SecretRef.Name)
		}
	}
	return refs
}

// signedImagesOfPod maps a Pod to the SignedImages of the digests it runs.
func signedImagesOfPod(_ context.Context, o client.Object) []reconcile.Request {
	pod, ok := o.(*corev1.Pod)
	if !ok {
		return nil
	}
	var reqs []reconcile.Request
	for _, ri := range podImages(pod) {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: pod.Namespace, Name: signedImageName(ri.Image)}})
	}
	return reqs
}

// policiesReferencing lists the policies that read a ConfigMap or Secret.
func policiesReferencing(ctx context.Context, c client.Reader, kind string, o client.Object) []sigwatchv1alpha1.ImageSignaturePolicy {
	var list sigwatchv1alpha1.ImageSignaturePolicyList
	if err := c.List(ctx, &list, client.MatchingFields{indexPolicyReferences: kind + "/" + o.GetNamespace() + "/" + o.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "listing the policies that read a "+kind+": they are not re-evaluated for this change",
			strings.ToLower(kind[:1])+kind[1:], klog.KObj(o))
		return nil
	}
	return list.Items
}
