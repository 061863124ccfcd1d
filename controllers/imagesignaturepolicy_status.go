package controllers

import (
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/policy"
)

// readiness is what a policy's inputs mean, decided in one place for both controllers: the policy
// controller writes it as Ready and Stalled, the SignedImage controller judges the images a policy that
// is not ready covers as PolicyNotReady.
type readiness struct {
	ready   bool
	reason  string
	message string
	// passing: not ready for a reason that may pass by itself (a trust root TUF cannot deliver): not
	// stalled.
	passing bool
}

// readinessOf decides the readiness of a resolved policy from PolicyResolver.Resolve's answer. Of the
// transient answers, only a public-good trust root that cannot be had is reported (the others are
// retried without a word).
func readinessOf(rp *ResolvedPolicy, err error) readiness {
	if err != nil {
		var perr *policy.Error
		if IsTransient(err) {
			return readiness{reason: transientReason(err), message: err.Error(), passing: true}
		}
		if errors.As(err, &perr) {
			return readiness{reason: perr.Reason, message: fmt.Sprintf("%s: %v", perr.Field, perr.Err)}
		}
		return readiness{reason: sigwatchv1alpha1.InvalidPolicyReason, message: err.Error()}
	}
	r := readiness{ready: true, reason: sigwatchv1alpha1.PolicyReadyReason,
		message: fmt.Sprintf("%d authorities, %d attestations, trust root %s", len(rp.Policy.Authorities), len(rp.Policy.Attestations), rp.Root.Source)}
	if rp.Root.Fallback != "" {
		r.reason = sigwatchv1alpha1.TrustRootFallbackReason
		r.message += " standing in for a current one: " + truncate(rp.Root.Fallback, 512)
	}
	return r
}

// conditions are the policy's Ready and Stalled conditions: a policy that is not ready is stalled until
// its spec or an object it reads changes.
func (r readiness) conditions(generation int64) (ready, stalled metav1.Condition) {
	r.message = truncate(r.message, 32768)
	ready = metav1.Condition{Type: sigwatchv1alpha1.ReadyCondition, Status: metav1.ConditionTrue, Reason: r.reason,
		Message: r.message, ObservedGeneration: generation}
	stalled = metav1.Condition{Type: sigwatchv1alpha1.StalledCondition, Status: metav1.ConditionFalse, Reason: r.reason,
		Message: "the policy compiled and its trust root and keys loaded", ObservedGeneration: generation}
	if !r.ready {
		ready.Status = metav1.ConditionFalse
		stalled.Status, stalled.Message = metav1.ConditionTrue, r.message
		if r.passing {
			stalled.Status, stalled.Message = metav1.ConditionFalse, "retried: this may pass by itself"
		}
	}
	return ready, stalled
}
