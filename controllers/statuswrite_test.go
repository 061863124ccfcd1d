package controllers

import (
	"context"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/sharding"
)

// rejectStatus fails the status patches of one kind with what err returns (nil: the patch goes through).
func rejectStatus(kind string, err func(obj client.Object) error) interceptor.Funcs {
	return interceptor.Funcs{SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
		if gvk, _ := c.GroupVersionKindFor(obj); gvk.Kind == kind {
			if err := err(obj); err != nil {
				return err
			}
		}
		return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
	}}
}

// duplicatePolicy is how the API server rejects a status whose map list has two entries with one key.
func duplicatePolicy(obj client.Object) error {
	gvk := obj.GetObjectKind().GroupVersionKind()
	return apierrors.NewInvalid(schema.GroupKind{Group: sigwatchv1alpha1.GroupVersion.Group, Kind: gvk.Kind}, obj.GetName(),
		field.ErrorList{field.Duplicate(field.NewPath("status", "policies").Index(1), map[string]any{"name": "key"})})
}

func conflict(obj client.Object) error {
	return apierrors.NewConflict(schema.GroupResource{Group: sigwatchv1alpha1.GroupVersion.Group, Resource: "signedimages"}, obj.GetName(),
		apierrors.NewBadRequest("the object has been modified"))
}

// withMetrics gives the reconcilers metrics on a registry of their own.
func (e *stepEnv) withMetrics() *prometheus.Registry {
	e.t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg, e.c, sharding.Whole)
	if err != nil {
		e.t.Fatal(err)
	}
	e.si.Metrics = m
	return reg
}

// counter is the value of a counter with exactly these labels (0 when there is none).
func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// TestStepRejectedStatusIsLoud: a status patch of a SignedImage that the API server rejects is counted,
// announced with a Warning Event on the SignedImage and returned (retried with backoff); the verdict it
// carried is not announced.
func TestStepRejectedStatusIsLoud(t *testing.T) {
	g := NewWithT(t)
	e := newStepEnv(t, rejectStatus("SignedImage", duplicatePolicy), keyPolicyObj(t, "key"), managedSI(), runningPod("web-1"))
	reg := e.withMetrics()

	_, err := e.reconcile()
	g.Expect(err).To(HaveOccurred(), "returned, to be retried with backoff")
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).To(ContainSubstring("patching the status of SignedImage shop/" + managedSI().Name))
	evs := e.events()
	g.Expect(evs).To(ConsistOf(HavePrefix("Warning StatusWriteFailed ")), "no Verified Event for a status that was not written")
	g.Expect(evs[0]).To(ContainSubstring("status.policies[1]"), "the Event says what the API server rejected")
	g.Expect(counter(t, reg, "sigwatch_status_write_errors_total", map[string]string{"kind": "SignedImage", "reason": "Invalid"})).To(Equal(1.0))
	g.Expect(verifiedOf(e.get())).To(BeNil(), "nothing was written")

	_, err = e.reconcile()
	g.Expect(err).To(HaveOccurred())
	g.Expect(counter(t, reg, "sigwatch_status_write_errors_total", map[string]string{"kind": "SignedImage", "reason": "Invalid"})).To(Equal(2.0))
}

// TestStepStatusConflictRequeuesQuietly: a conflict on the status patch is retried soon, without an
// error, an Event or a count; the retry writes the status and announces the verdict once.
func TestStepStatusConflictRequeuesQuietly(t *testing.T) {
	g := NewWithT(t)
	failures := 1
	e := newStepEnv(t, rejectStatus("SignedImage", func(obj client.Object) error {
		if failures == 0 {
			return nil
		}
		failures--
		return conflict(obj)
	}), keyPolicyObj(t, "key"), managedSI(), runningPod("web-1"))
	reg := e.withMetrics()

	res, err := e.reconcile()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.RequeueAfter).To(BeNumerically(">", 0), "retried")
	g.Expect(res.RequeueAfter).To(BeNumerically("<=", e.si.MinRetry), "soon")
	g.Expect(e.events()).To(BeEmpty())
	g.Expect(counter(t, reg, "sigwatch_status_write_errors_total", map[string]string{"kind": "SignedImage", "reason": "Conflict"})).To(BeZero())
	g.Expect(failures).To(BeZero())

	e.mustReconcile()
	g.Expect(verifiedOf(e.get()).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(e.events()).To(ConsistOf(HavePrefix("Normal Verified ")))
}

// TestStepStatusWriteFailureNoteIsBounded: the Warning's note fits the Events API (1024 bytes) however long
// the API server's message, and the counter names the API reason.
func TestStepStatusWriteFailureNoteIsBounded(t *testing.T) {
	g := NewWithT(t)
	e := newStepEnv(t, rejectStatus("SignedImage", func(client.Object) error {
		return apierrors.NewRequestEntityTooLargeError(strings.Repeat("much too long ", 1000))
	}), keyPolicyObj(t, "key"), managedSI(), runningPod("web-1"))
	reg := e.withMetrics()

	_, err := e.reconcile()
	g.Expect(apierrors.IsRequestEntityTooLargeError(err)).To(BeTrue(), "%v", err)
	evs := e.events()
	g.Expect(evs).To(ConsistOf(HavePrefix("Warning StatusWriteFailed ")))
	g.Expect(len(strings.TrimPrefix(evs[0], "Warning StatusWriteFailed "))).To(BeNumerically("<=", 1024))
	g.Expect(counter(t, reg, "sigwatch_status_write_errors_total", map[string]string{"kind": "SignedImage", "reason": "RequestEntityTooLarge"})).To(Equal(1.0))
}

// TestStepRejectedPolicyStatusIsLoud: the same for the status of an ImageSignaturePolicy.
func TestStepRejectedPolicyStatusIsLoud(t *testing.T) {
	g := NewWithT(t)
	p := keyPolicyObj(t, "key")
	e := newStepEnv(t, rejectStatus("ImageSignaturePolicy", duplicatePolicy), p)
	reg := e.withMetrics()
	e.policies.Recorder, e.policies.Metrics = e.recorder, e.si.Metrics

	_, err := e.policies.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(p)})
	g.Expect(err).To(HaveOccurred(), "returned, to be retried with backoff")
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
	g.Expect(e.events()).To(ConsistOf(HavePrefix("Warning StatusWriteFailed ")))
	g.Expect(counter(t, reg, "sigwatch_status_write_errors_total", map[string]string{"kind": "ImageSignaturePolicy", "reason": "Invalid"})).To(Equal(1.0))
}
