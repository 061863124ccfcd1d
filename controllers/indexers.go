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
	// indexPodImages indexes Pods by the image digests they run ("repository@sha256:...").
	indexPodImages = "sigwatch.dev/images"
	// indexSignedImageImage indexes SignedImages by the image digest of their spec ("repository@sha256:...").
	indexSignedImageImage = "sigwatch.dev/image"
	// indexSignedImagePolicies indexes SignedImages by the policies in their status.
	indexSignedImagePolicies = "sigwatch.dev/policies"
	// indexSignedImageRevocations indexes SignedImages by the SignatureRevocations their status says
	// revoked a signature or attestation of them.
	indexSignedImageRevocations = "sigwatch.dev/revocations"
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
		{&corev1.Pod{}, indexPodImages, func(o client.Object) []string {
			var images []string
			for _, ri := range podImages(o.(*corev1.Pod)) {
				images = append(images, ri.Image.String())
			}
			return images
		}},
		{&sigwatchv1alpha1.SignedImage{}, indexSignedImageImage, func(o client.Object) []string {
			return []string{imageOf(o.(*sigwatchv1alpha1.SignedImage)).String()}
		}},
		{&sigwatchv1alpha1.SignedImage{}, indexSignedImagePolicies, func(o client.Object) []string {
			var names []string
			for _, p := range o.(*sigwatchv1alpha1.SignedImage).Status.Policies {
				names = append(names, p.Name)
			}
			return names
		}},
		{&sigwatchv1alpha1.SignedImage{}, indexSignedImageRevocations, func(o client.Object) []string {
			return revocationsOf(o.(*sigwatchv1alpha1.SignedImage))
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
	if tr := p.Spec.TrustedRoot; tr != nil && tr.ConfigMapRef.Name != "" {
		refs = append(refs, "ConfigMap/"+tr.ConfigMapRef.Namespace+"/"+tr.ConfigMapRef.Name)
	}
	if tr := p.Spec.TrustedRoot; tr != nil && tr.TUF != nil {
		refs = append(refs, "ConfigMap/"+tr.TUF.RootRef.Namespace+"/"+tr.TUF.RootRef.Name)
	}
	for _, a := range p.Spec.Authorities {
		if a.Key != nil && a.Key.SecretRef != nil {
			refs = append(refs, "Secret/"+a.Key.SecretRef.Namespace+"/"+a.Key.SecretRef.Name)
		}
	}
	return refs
}

// signedImagesOfPod maps a Pod to the SignedImages of its namespace whose spec is a digest it runs,
// whatever their names.
func (r *SignedImageReconciler) signedImagesOfPod(ctx context.Context, o client.Object) []reconcile.Request {
	pod, ok := o.(*corev1.Pod)
	if !ok {
		return nil
	}
	var reqs []reconcile.Request
	for _, ri := range podImages(pod) {
		var list sigwatchv1alpha1.SignedImageList
		if err := r.Client.List(ctx, &list, client.InNamespace(pod.Namespace), client.MatchingFields{indexSignedImageImage: ri.Image.String()}); err != nil {
			log.FromContext(ctx).Error(err, "listing the SignedImages of a pod's image: they are not re-evaluated for this change",
				"pod", klog.KObj(pod), "image", ri.Image.String())
			continue
		}
		for _, si := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: si.Namespace, Name: si.Name}})
		}
	}
	return reqs
}

// podOfSignedImage maps a deleted SignedImage to one running pod of its digest, if any, so that the
// digest gets its SignedImage back at once rather than at the pod's next change.
func (r *PodReconciler) podOfSignedImage(ctx context.Context, o client.Object) []reconcile.Request {
	si, ok := o.(*sigwatchv1alpha1.SignedImage)
	if !ok {
		return nil
	}
	// Forgotten first: whatever the list below says, the next pod of the digest looks again.
	r.ensured.forget(ensuredKey(si.Namespace, imageOf(si)))
	var list corev1.PodList
	if err := r.Client.List(ctx, &list, client.InNamespace(si.Namespace), client.MatchingFields{indexPodImages: imageOf(si).String()}); err != nil {
		log.FromContext(ctx).Error(err, "listing the pods of a deleted SignedImage: its digest gets a SignedImage again at their next change",
			"signedImage", klog.KObj(si))
		return nil
	}
	for i := range list.Items {
		if pod := &list.Items[i]; podRunning(pod) && runsImage(pod, imageOf(si)) {
			return []reconcile.Request{{NamespacedName: client.ObjectKeyFromObject(pod)}}
		}
	}
	return nil
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
