package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/verification"
)

// TestJudge: how the policies' results make the image's verdict, with Audit policies and exemptions.
func TestJudge(t *testing.T) {
	const (
		V = sigwatchv1alpha1.PolicyVerified
		F = sigwatchv1alpha1.PolicyFailed
		U = sigwatchv1alpha1.PolicyUnknown
		X = sigwatchv1alpha1.PolicyExempt
	)
	r := func(name string, result sigwatchv1alpha1.PolicyResultType, reason string) verification.PolicyResult {
		return verification.PolicyResult{Policy: name, Result: result, Reason: reason, Message: "m-" + name}
	}
	cases := []struct {
		name      string
		results   []verification.PolicyResult
		audit     []string
		status    metav1.ConditionStatus
		reason    string
		auditOnly bool
		message   string
	}{
		{"all enforce verified", []verification.PolicyResult{r("a", V, "Verified"), r("b", V, "Verified")}, nil, metav1.ConditionTrue, "Verified", false, ""},
		{"an enforce failure", []verification.PolicyResult{r("a", V, "Verified"), r("b", F, "UntrustedSigner")}, nil, metav1.ConditionFalse, "UntrustedSigner", false, "policy b: m-b"},
		{"only the audit policy fails", []verification.PolicyResult{r("a", F, "SignatureMissing"), r("b", V, "Verified")}, []string{"a"},
			metav1.ConditionFalse, "SignatureMissing", true, "Audit mode, not enforced: policy a: m-a"},
		{"only audit policies, unknown", []verification.PolicyResult{r("a", U, "RegistryUnavailable")}, []string{"a"},
			metav1.ConditionUnknown, "RegistryUnavailable", true, "Audit mode, not enforced: policy a: m-a"},
		{"an enforce failure is the reason shown before an audit one", []verification.PolicyResult{r("a", F, "SignatureMissing"), r("b", F, "UntrustedSigner")}, []string{"a"},
			metav1.ConditionFalse, "UntrustedSigner", false, "policy b: m-b"},
		{"an enforce unknown beside an audit failure is not audit only", []verification.PolicyResult{r("a", F, "SignatureMissing"), r("b", U, "RegistryUnavailable")}, []string{"a"},
			metav1.ConditionFalse, "SignatureMissing", false, "policy a: m-a"},
		{"exempt results are not judged", []verification.PolicyResult{r("a", X, "Exempt"), r("b", V, "Verified")}, nil, metav1.ConditionTrue, "Verified", false, ""},
		{"exempt beside a failure", []verification.PolicyResult{r("a", X, "Exempt"), r("b", F, "InvalidSignature")}, nil, metav1.ConditionFalse, "InvalidSignature", false, "policy b: m-b"},
		{"every policy exempt", []verification.PolicyResult{r("a", X, "Exempt"), r("b", X, "Exempt")}, nil, metav1.ConditionUnknown, "Exempt", false, "policy a: m-a"},
		{"no policy", nil, nil, metav1.ConditionUnknown, "NoMatchingPolicy", false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			audit := map[string]bool{}
			for _, a := range c.audit {
				audit[a] = true
			}
			v := judge(c.results, audit, &verification.Result{Image: stepImage()})
			g.Expect(v.status).To(Equal(c.status))
			g.Expect(v.reason).To(Equal(c.reason))
			g.Expect(v.auditOnly).To(Equal(c.auditOnly))
			if c.message != "" {
				g.Expect(v.message).To(Equal(c.message))
			}
		})
	}
}

// TestSetConditionsAuditAndExempt: Audit-only failures and exemptions leave the image Ready and not
// Stalled; an enforced failure does not.
func TestSetConditionsAuditAndExempt(t *testing.T) {
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name           string
		v              verdict
		ready, stalled metav1.ConditionStatus
		readyReason    string
	}{
		{"enforced failure", verdict{status: metav1.ConditionFalse, reason: "UntrustedSigner"}, metav1.ConditionFalse, metav1.ConditionTrue, "UntrustedSigner"},
		{"audit-only failure", verdict{status: metav1.ConditionFalse, reason: "UntrustedSigner", auditOnly: true}, metav1.ConditionTrue, metav1.ConditionFalse, sigwatchv1alpha1.AuditOnlyReason},
		{"audit-only policy not ready", verdict{status: metav1.ConditionUnknown, reason: sigwatchv1alpha1.PolicyNotReadyReason, auditOnly: true}, metav1.ConditionTrue, metav1.ConditionFalse, sigwatchv1alpha1.AuditOnlyReason},
		{"exempt", verdict{status: metav1.ConditionUnknown, reason: sigwatchv1alpha1.ExemptReason}, metav1.ConditionTrue, metav1.ConditionFalse, sigwatchv1alpha1.ExemptReason},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			var st sigwatchv1alpha1.SignedImageStatus
			setConditions(&st, c.v, 1, NoMatchWarn, now)
			ready := meta.FindStatusCondition(st.Conditions, sigwatchv1alpha1.ReadyCondition)
			g.Expect(ready.Status).To(Equal(c.ready))
			g.Expect(ready.Reason).To(Equal(c.readyReason))
			g.Expect(meta.FindStatusCondition(st.Conditions, sigwatchv1alpha1.StalledCondition).Status).To(Equal(c.stalled))
			g.Expect(meta.FindStatusCondition(st.Conditions, sigwatchv1alpha1.VerifiedCondition).Reason).To(Equal(c.v.reason))
		})
	}
}

func TestEventReasonFor(t *testing.T) {
	g := NewWithT(t)
	c := func(status metav1.ConditionStatus, reason string) *metav1.Condition {
		return &metav1.Condition{Status: status, Reason: reason}
	}
	auditReady := c(metav1.ConditionTrue, sigwatchv1alpha1.AuditOnlyReason)
	for _, tc := range []struct {
		verified, ready *metav1.Condition
		typ, reason     string
	}{
		{c(metav1.ConditionTrue, "Verified"), c(metav1.ConditionTrue, "Verified"), corev1.EventTypeNormal, EventReasonVerified},
		{c(metav1.ConditionFalse, "UntrustedSigner"), c(metav1.ConditionFalse, "UntrustedSigner"), corev1.EventTypeWarning, EventReasonVerificationFailed},
		{c(metav1.ConditionUnknown, "RegistryUnavailable"), nil, corev1.EventTypeWarning, EventReasonVerificationUnknown},
		{c(metav1.ConditionFalse, "UntrustedSigner"), auditReady, corev1.EventTypeNormal, EventReasonAuditFailed},
		{c(metav1.ConditionUnknown, "RegistryUnavailable"), auditReady, corev1.EventTypeNormal, EventReasonAuditUnknown},
		{c(metav1.ConditionUnknown, sigwatchv1alpha1.ExemptReason), c(metav1.ConditionTrue, sigwatchv1alpha1.ExemptReason), corev1.EventTypeNormal, EventReasonExempt},
	} {
		typ, reason := eventReasonFor(tc.verified, tc.ready)
		g.Expect([]string{typ, reason}).To(Equal([]string{tc.typ, tc.reason}), "%+v", tc.verified)
	}
}

func TestVerifiedLabelValue(t *testing.T) {
	g := NewWithT(t)
	g.Expect(verifiedLabelValue(nil)).To(BeEmpty())
	g.Expect(verifiedLabelValue(&metav1.Condition{Status: metav1.ConditionTrue})).To(Equal("true"))
	g.Expect(verifiedLabelValue(&metav1.Condition{Status: metav1.ConditionFalse})).To(Equal("false"))
	g.Expect(verifiedLabelValue(&metav1.Condition{Status: metav1.ConditionUnknown, Reason: "Pending"})).To(Equal("unknown"))
	g.Expect(verifiedLabelValue(&metav1.Condition{Status: metav1.ConditionUnknown, Reason: sigwatchv1alpha1.ExemptReason})).To(Equal("exempt"))
}

func TestRejectedSignerOf(t *testing.T) {
	g := NewWithT(t)
	g.Expect(rejectedSignerOf(nil)).To(BeEmpty())
	sigs := []verification.Signature{
		{Subject: "https://github.com/o/r/.github/workflows/release.yaml@refs/heads/main"}, // accepted: not shown
		{PredicateType: "https://slsa.dev/provenance/v1", Subject: "att", Reason: "UntrustedSigner"},
		{Reason: "InvalidSignature"}, // no identity to show
		{Subject: "https://github.com/o/r/.github/workflows/pr.yaml@refs/pull/1/merge", Reason: "UntrustedSigner"},
	}
	g.Expect(rejectedSignerOf(sigs)).To(Equal("https://github.com/o/r/.github/workflows/pr.yaml@refs/pull/1/merge (not accepted)"))
	g.Expect(rejectedSignerOf([]verification.Signature{{KeyID: "0123456789abcdef0123", Reason: "UntrustedSigner"}})).To(HaveSuffix(" (not accepted)"))
	long := rejectedSignerOf([]verification.Signature{{Subject: string(make([]byte, 5000)), Reason: "UntrustedSigner"}})
	g.Expect(len(long)).To(BeNumerically("<=", 1024), "fits the status field")
	g.Expect(long).To(HaveSuffix("(not accepted)"))
}

func TestExemptionReadiness(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	x := &sigwatchv1alpha1.ImageSignatureExemption{ObjectMeta: metav1.ObjectMeta{Generation: 2}}
	c, again := exemptionReadiness(x, now)
	g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
	g.Expect(again).To(BeZero(), "no expiry, nothing to come back for")
	x.Spec.ExpiresAt = &metav1.Time{Time: now.Add(90 * time.Minute)}
	c, again = exemptionReadiness(x, now)
	g.Expect(c.Reason).To(Equal(sigwatchv1alpha1.ExemptionActiveReason))
	g.Expect(again).To(Equal(90*time.Minute), "back at the expiry")
	c, again = exemptionReadiness(x, now.Add(90*time.Minute))
	g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(c.Reason).To(Equal(sigwatchv1alpha1.ExemptionExpiredReason))
	g.Expect(again).To(BeZero())
}

// TestStepAuditPolicy: an image that fails only an Audit policy is Verified=False but Ready, with a
// Normal Event and no Warning on its pods; its policy results carry mode and severity.
func TestStepAuditPolicy(t *testing.T) {
	g := NewWithT(t)
	enforce := keyPolicyObj(t, "enforce")
	enforce.Spec.Severity = sigwatchv1alpha1.SeverityCritical
	audit := keyPolicyObj(t, "try-out")
	audit.Spec.Mode = sigwatchv1alpha1.PolicyModeAudit
	e := newStepEnv(t, interceptor.Funcs{}, enforce, audit, managedSI(), runningPod("web-1"))
	e.verifier.byPolicy = map[string][2]string{"try-out": {string(sigwatchv1alpha1.PolicyFailed), sigwatchv1alpha1.UntrustedSignerReason}}

	e.mustReconcile()
	si := e.get()
	g.Expect(verifiedOf(si).Status).To(Equal(metav1.ConditionFalse))
	g.Expect(verifiedOf(si).Message).To(HavePrefix("Audit mode, not enforced: policy try-out"))
	g.Expect(meta.FindStatusCondition(si.Status.Conditions, sigwatchv1alpha1.ReadyCondition).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(meta.IsStatusConditionTrue(si.Status.Conditions, sigwatchv1alpha1.StalledCondition)).To(BeFalse())
	g.Expect(si.Status.Policies).To(ConsistOf(
		And(HaveField("Name", "enforce"), HaveField("Mode", sigwatchv1alpha1.PolicyModeEnforce), HaveField("Severity", sigwatchv1alpha1.SeverityCritical)),
		And(HaveField("Name", "try-out"), HaveField("Mode", sigwatchv1alpha1.PolicyModeAudit), HaveField("Severity", sigwatchv1alpha1.SeverityHigh)),
	))
	g.Expect(si.Labels).To(HaveKeyWithValue(sigwatchv1alpha1.VerifiedLabel, "false"), "the label says the truth")
	g.Expect(e.events()).To(ConsistOf(And(HavePrefix("Normal AuditFailed "), ContainSubstring("UntrustedSigner (severity info)"))), "no Warning, none on the pod")

	// The policy is switched to Enforce: the same verdict now counts.
	audit.Spec.Mode = sigwatchv1alpha1.PolicyModeEnforce
	g.Expect(e.c.Update(context.Background(), audit)).To(Succeed())
	e.mustReconcile()
	si = e.get()
	g.Expect(meta.FindStatusCondition(si.Status.Conditions, sigwatchv1alpha1.ReadyCondition).Status).To(Equal(metav1.ConditionFalse))
	g.Expect(meta.IsStatusConditionTrue(si.Status.Conditions, sigwatchv1alpha1.StalledCondition)).To(BeTrue())
	g.Expect(e.events()).To(ContainElement(And(HavePrefix("Warning VerificationFailed "), ContainSubstring("UntrustedSigner (severity high)"))))
}

// TestStepExemption: an exempted image is Exempt (not verified), is not sent to the verifier, is
// labelled exempt, and is judged again the moment the exemption expires.
func TestStepExemption(t *testing.T) {
	g := NewWithT(t)
	e := newStepEnv(t, interceptor.Funcs{}, keyPolicyObj(t, "key"), managedSI(), runningPod("web-1"))
	e.verifier.set(sigwatchv1alpha1.PolicyFailed, sigwatchv1alpha1.SignatureMissingReason)
	expires := e.clock.Now().Add(30 * time.Minute) // sooner than the hour's re-verification
	x := &sigwatchv1alpha1.ImageSignatureExemption{ObjectMeta: metav1.ObjectMeta{Name: "legacy-web"},
		Spec: sigwatchv1alpha1.ImageSignatureExemptionSpec{Reason: "INC-1: unsigned until the pipeline moves", Namespaces: []string{stepNS},
			Images: []sigwatchv1alpha1.ImagePattern{"ghcr.io/yourorg/web"}, ExpiresAt: &metav1.Time{Time: expires}}}
	g.Expect(e.c.Create(context.Background(), x)).To(Succeed())

	e.mustReconcile()
	si := e.get()
	c := verifiedOf(si)
	g.Expect(c.Status).To(Equal(metav1.ConditionUnknown), "exempt is not verified")
	g.Expect(c.Reason).To(Equal(sigwatchv1alpha1.ExemptReason))
	g.Expect(c.Message).To(ContainSubstring("legacy-web: INC-1"))
	g.Expect(c.Message).To(ContainSubstring(expires.Format(time.RFC3339)))
	g.Expect(meta.IsStatusConditionTrue(si.Status.Conditions, sigwatchv1alpha1.ReadyCondition)).To(BeTrue())
	g.Expect(si.Status.Policies).To(ConsistOf(And(HaveField("Result", sigwatchv1alpha1.PolicyExempt), HaveField("Exemption", "legacy-web"))))
	g.Expect(si.Labels).To(HaveKeyWithValue(sigwatchv1alpha1.VerifiedLabel, "exempt"))
	g.Expect(e.verifier.calls()).To(BeZero(), "an exempt image is not read from the registry")
	g.Expect(si.Status.NextVerificationTime.Time).To(BeTemporally("==", expires), "judged again when the exemption expires")
	g.Expect(e.events()).To(ConsistOf(HavePrefix("Normal Exempt ")))

	e.clock.SetTime(expires.Add(-time.Second))
	e.mustReconcile()
	g.Expect(verifiedOf(e.get()).Reason).To(Equal(sigwatchv1alpha1.ExemptReason), "a second before, still exempt")

	e.clock.SetTime(expires)
	e.mustReconcile()
	si = e.get()
	g.Expect(verifiedOf(si).Status).To(Equal(metav1.ConditionFalse), "at the moment it expires, the image is judged")
	g.Expect(verifiedOf(si).Reason).To(Equal(sigwatchv1alpha1.SignatureMissingReason))
	g.Expect(si.Labels).To(HaveKeyWithValue(sigwatchv1alpha1.VerifiedLabel, "false"))
	g.Expect(e.verifier.calls()).To(Equal(1))
}

// TestStepExemptionOfOnePolicy: an exemption from one policy leaves the others judging the image.
func TestStepExemptionOfOnePolicy(t *testing.T) {
	g := NewWithT(t)
	e := newStepEnv(t, interceptor.Funcs{}, keyPolicyObj(t, "a"), keyPolicyObj(t, "b"), managedSI(), runningPod("web-1"))
	x := &sigwatchv1alpha1.ImageSignatureExemption{ObjectMeta: metav1.ObjectMeta{Name: "not-a"},
		Spec: sigwatchv1alpha1.ImageSignatureExemptionSpec{Reason: "r", Policies: []string{"a"}, Digests: []string{dig}}}
	g.Expect(e.c.Create(context.Background(), x)).To(Succeed())
	e.mustReconcile()
	si := e.get()
	g.Expect(verifiedOf(si).Status).To(Equal(metav1.ConditionTrue), "b verified it")
	g.Expect(e.verifier.requests[0].Policies).To(HaveLen(1))
	g.Expect(e.verifier.requests[0].Policies[0].Name).To(Equal("b"))
	g.Expect(si.Status.Policies).To(ConsistOf(HaveField("Result", sigwatchv1alpha1.PolicyExempt), HaveField("Result", sigwatchv1alpha1.PolicyVerified)))

	// Deleting the exemption re-judges at once (the fingerprint changed).
	g.Expect(e.c.Delete(context.Background(), x)).To(Succeed())
	g.Expect(e.si.signedImagesOfExemption(context.Background(), x)).To(HaveLen(1), "the exemption's images are mapped")
	e.mustReconcile()
	g.Expect(e.verifier.requests).To(HaveLen(2))
	g.Expect(e.verifier.requests[1].Policies).To(HaveLen(2))
}

// TestStepRejectedSignerShown: a failed image shows who signed what was found, as not accepted.
func TestStepRejectedSignerShown(t *testing.T) {
	g := NewWithT(t)
	e := newStepEnv(t, interceptor.Funcs{}, keyPolicyObj(t, "key"), managedSI(), runningPod("web-1"))
	e.verifier.set(sigwatchv1alpha1.PolicyFailed, sigwatchv1alpha1.UntrustedSignerReason)
	e.verifier.rejected = &verification.Signature{Format: sigwatchv1alpha1.SignatureFormatBundle,
		Subject: "https://github.com/o/r/.github/workflows/pr.yaml@refs/pull/1/merge", Reason: sigwatchv1alpha1.UntrustedSignerReason}
	e.mustReconcile()
	si := e.get()
	g.Expect(si.Status.Summary.Signer).To(Equal("https://github.com/o/r/.github/workflows/pr.yaml@refs/pull/1/merge (not accepted)"))
	g.Expect(si.Status.LastVerifiedTime).To(BeNil(), "never verified")
	g.Expect(si.Status.LastAttemptTime).NotTo(BeNil(), "but checked")

	// A SignedImage written before the label existed gets it on its next visit, with no status change.
	delete(si.Labels, sigwatchv1alpha1.VerifiedLabel)
	g.Expect(e.c.Update(context.Background(), si)).To(Succeed())
	e.mustReconcile()
	g.Expect(e.get().Labels).To(HaveKeyWithValue(sigwatchv1alpha1.VerifiedLabel, "false"))
}

func TestVerdictSeverity(t *testing.T) {
	g := NewWithT(t)
	r := func(result sigwatchv1alpha1.PolicyResultType, mode sigwatchv1alpha1.PolicyMode, sev sigwatchv1alpha1.PolicySeverity) sigwatchv1alpha1.PolicyResult {
		return sigwatchv1alpha1.PolicyResult{Result: result, Mode: mode, Severity: sev}
	}
	const enforce, audit = sigwatchv1alpha1.PolicyModeEnforce, sigwatchv1alpha1.PolicyModeAudit
	g.Expect(verdictSeverity(nil)).To(BeEmpty())
	g.Expect(verdictSeverity([]sigwatchv1alpha1.PolicyResult{r("Verified", enforce, "critical")})).To(BeEmpty())
	g.Expect(verdictSeverity([]sigwatchv1alpha1.PolicyResult{r("Failed", enforce, "low"), r("Unknown", enforce, "critical"), r("Verified", enforce, "critical")})).To(Equal("critical"))
	g.Expect(verdictSeverity([]sigwatchv1alpha1.PolicyResult{r("Failed", enforce, "")})).To(Equal("high"), "unset is high")
	g.Expect(verdictSeverity([]sigwatchv1alpha1.PolicyResult{r("Failed", audit, "critical")})).To(Equal("info"), "Audit failures are info")
	g.Expect(verdictSeverity([]sigwatchv1alpha1.PolicyResult{r("Failed", audit, "critical"), r("Failed", enforce, "medium")})).To(Equal("medium"))
	g.Expect(verdictSeverity([]sigwatchv1alpha1.PolicyResult{r("Exempt", enforce, "critical")})).To(BeEmpty())
}
