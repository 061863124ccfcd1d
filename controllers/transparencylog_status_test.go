package controllers

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"golang.org/x/mod/sumdb/tlog"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/logmonitor"
	"github.com/sigwatch/sigwatch/internal/verification"
)

func TestInclusionCondition(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	in := func(r sigwatchv1alpha1.LogInclusionResult) verification.Signature {
		return verification.Signature{Authority: "a", Inclusion: &verification.Inclusion{Result: r, Checked: now, Message: string(r) + " says why"}}
	}
	someoneElse := []verification.UnexpectedSigner{{Log: "rekor.test - 1", UUID: "ab", Index: 9, Signer: "https://github.com/mallory/x", Issuer: "https://token.actions.githubusercontent.com"}}
	for _, tc := range []struct {
		name       string
		sigs       []verification.Signature
		unexpected []verification.UnexpectedSigner
		status     metav1.ConditionStatus
		reason     string
	}{
		{"in log", []verification.Signature{in(sigwatchv1alpha1.LogInclusionInLog)}, nil, metav1.ConditionTrue, sigwatchv1alpha1.EntryInLogReason},
		{"inconsistent first", []verification.Signature{in(sigwatchv1alpha1.LogInclusionUnavailable), in(sigwatchv1alpha1.LogInclusionNotInLog), in(sigwatchv1alpha1.LogInclusionInconsistent)},
			someoneElse, metav1.ConditionFalse, sigwatchv1alpha1.LogInconsistentReason},
		{"not in log before unavailable", []verification.Signature{in(sigwatchv1alpha1.LogInclusionUnavailable), in(sigwatchv1alpha1.LogInclusionNotInLog)},
			someoneElse, metav1.ConditionFalse, sigwatchv1alpha1.EntryNotInLogReason},
		{"someone else signed", []verification.Signature{in(sigwatchv1alpha1.LogInclusionInLog), in(sigwatchv1alpha1.LogInclusionUnavailable)},
			someoneElse, metav1.ConditionFalse, sigwatchv1alpha1.UnexpectedSignerReason},
		{"unavailable", []verification.Signature{in(sigwatchv1alpha1.LogInclusionInLog), in(sigwatchv1alpha1.LogInclusionUnavailable)},
			nil, metav1.ConditionUnknown, sigwatchv1alpha1.LogUnavailableReason},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			c := inclusionCondition(tc.sigs, tc.unexpected, false, 3, now)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(tc.status))
			g.Expect(c.Reason).To(Equal(tc.reason))
			g.Expect(c.ObservedGeneration).To(Equal(int64(3)))
		})
	}
	g := NewWithT(t)
	rejected := in(sigwatchv1alpha1.LogInclusionNotInLog)
	rejected.Reason = sigwatchv1alpha1.UntrustedSignerReason
	g.Expect(inclusionCondition([]verification.Signature{rejected, {Authority: "a"}}, nil, false, 1, now)).To(BeNil(), "nothing accepted was checked")
	c := inclusionCondition([]verification.Signature{in(sigwatchv1alpha1.LogInclusionInLog)}, someoneElse, true, 1, now)
	g.Expect(c.Message).To(ContainSubstring("and maybe more"))
	g.Expect(c.Message).To(ContainSubstring("https://github.com/mallory/x (issuer https://token.actions.githubusercontent.com), entry 9 (ab) of log rekor.test - 1"))

	// No check in a verdict removes the condition; an Unknown for another reason keeps it.
	st := sigwatchv1alpha1.SignedImageStatus{Conditions: []metav1.Condition{{Type: sigwatchv1alpha1.InTransparencyLogCondition, Status: metav1.ConditionTrue, Reason: "EntryInLog"}}}
	setInclusionCondition(&st, &verification.Result{}, verdict{status: metav1.ConditionUnknown, reason: sigwatchv1alpha1.RegistryUnavailableReason}, 1, now)
	g.Expect(meta.FindStatusCondition(st.Conditions, sigwatchv1alpha1.InTransparencyLogCondition)).NotTo(BeNil())
	setInclusionCondition(&st, &verification.Result{}, verdict{status: metav1.ConditionTrue, reason: sigwatchv1alpha1.VerifiedReason}, 1, now)
	g.Expect(meta.FindStatusCondition(st.Conditions, sigwatchv1alpha1.InTransparencyLogCondition)).To(BeNil())
}

func TestTransparencyLogStatus(t *testing.T) {
	g := NewWithT(t)
	now := time.Unix(1_800_000_000, 0)
	lg := logmonitor.Log{Origin: "log.example", ID: "00112233445566", URL: "https://log.example"}
	var h tlog.Hash
	h[0] = 1
	rec := logmonitor.Record{Log: lg, Checkpoint: []byte("log.example\n5\nAQ==\n\n— sig\n"), Tree: tlog.Tree{N: 5, Hash: h}, VerifiedTime: now, CheckedTime: now}
	st := transparencyLogStatus(sigwatchv1alpha1.TransparencyLogStatus{}, rec)
	g.Expect(*st.TreeSize).To(Equal(int64(5)))
	g.Expect(st.Checkpoint).To(Equal(string(rec.Checkpoint)))
	g.Expect(meta.IsStatusConditionTrue(st.Conditions, sigwatchv1alpha1.ConsistentCondition)).To(BeTrue())
	g.Expect(meta.IsStatusConditionTrue(st.Conditions, sigwatchv1alpha1.ReadyCondition)).To(BeTrue())
	g.Expect(recordOf(lg, st).Checkpoint).To(Equal(rec.Checkpoint))

	later := now.Add(time.Minute)
	rec.CheckedTime, rec.Problem = later, "HTTP 503"
	rec.Inconsistency = &logmonitor.Inconsistency{Kind: logmonitor.Rollback, Detected: later, Message: "smaller", Trusted: []byte("a"), Conflicting: []byte("b")}
	st = transparencyLogStatus(st, rec)
	c := meta.FindStatusCondition(st.Conditions, sigwatchv1alpha1.ConsistentCondition)
	g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(c.Reason).To(Equal(sigwatchv1alpha1.LogInconsistentReason))
	g.Expect(c.LastTransitionTime.Time).To(Equal(later))
	g.Expect(meta.FindStatusCondition(st.Conditions, sigwatchv1alpha1.ReadyCondition).Reason).To(Equal(sigwatchv1alpha1.LogUnavailableReason))
	g.Expect(st.Inconsistency.Kind).To(Equal(sigwatchv1alpha1.LogRollback))
	// A replica whose view is older never writes a smaller checkpoint over the stored one.
	small := logmonitor.Record{Log: lg, Checkpoint: []byte("log.example\n3\nAQ==\n\n— sig\n"), Tree: tlog.Tree{N: 3}, CheckedTime: later}
	g.Expect(*transparencyLogStatus(st, small).TreeSize).To(Equal(int64(5)))
	g.Expect(transparencyLogStatus(st, small).Checkpoint).To(Equal(string(rec.Checkpoint)))

	back := recordOf(lg, st)
	g.Expect(back.Inconsistency.Kind).To(Equal(logmonitor.Rollback))
	g.Expect(back.Inconsistency.Trusted).To(Equal([]byte("a")))
	g.Expect(back.Inconsistency.Conflicting).To(Equal([]byte("b")))
}
