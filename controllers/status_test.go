package controllers

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/imageref"
	"github.com/sigwatch/sigwatch/internal/verification"
)

const dig = "sha256:0f3c4fe5a5a8c7d6b3a1e2f4d5c6b7a8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4"

func TestSignedImageName(t *testing.T) {
	g := NewWithT(t)
	dns := regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	long := "ghcr.io/yourorg/" + strings.Repeat("very-long-name_", 10)
	for _, repo := range []string{"docker.io/library/nginx", "ghcr.io/yourorg/App_Server", long, "127.0.0.1:5000/___"} {
		img := imageref.Image{Repository: repo, Digest: dig}
		seen := map[string]bool{}
		for attempt := range signedImageNameAttempts {
			n := signedImageName(img, attempt)
			g.Expect(len(n)).To(BeNumerically("<=", 63), n)
			g.Expect(n).To(MatchRegexp(dns.String()), n)
			g.Expect(n).To(MatchRegexp(`-[0-9a-f]{32}$`), "128 bits of hash: %s", n)
			g.Expect(signedImageName(img, attempt)).To(Equal(n), "deterministic")
			g.Expect(seen).NotTo(HaveKey(n), "each attempt has a name of its own")
			seen[n] = true
		}
	}
	g.Expect(signedImageName(imageref.Image{Repository: "docker.io/library/nginx", Digest: dig}, 0)).To(HavePrefix("nginx-"))
	g.Expect(signedImageName(imageref.Image{Repository: "127.0.0.1:5000/___", Digest: dig}, 0)).To(HavePrefix("image-"))
	a := signedImageName(imageref.Image{Repository: "ghcr.io/a/app", Digest: dig}, 0)
	b := signedImageName(imageref.Image{Repository: "ghcr.io/b/app", Digest: dig}, 0)
	g.Expect(a).NotTo(Equal(b), "the hash covers the whole repository")
}

func TestPodImages(t *testing.T) {
	g := NewWithT(t)
	pod := &corev1.Pod{
		Spec: corev1.PodSpec{
			InitContainers:      []corev1.Container{{Name: "init", Image: "busybox:1.36"}},
			Containers:          []corev1.Container{{Name: "app", Image: "ghcr.io/yourorg/app:v1"}, {Name: "sidecar", Image: "ghcr.io/yourorg/proxy@" + dig}, {Name: "tagged", Image: "nginx:latest"}},
			EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox:1.36"}}},
		},
		Status: corev1.PodStatus{
			InitContainerStatuses:      []corev1.ContainerStatus{{Name: "init", ImageID: "docker-pullable://busybox@" + dig}},
			ContainerStatuses:          []corev1.ContainerStatus{{Name: "app", ImageID: dig}, {Name: "tagged"}},
			EphemeralContainerStatuses: []corev1.ContainerStatus{{Name: "debug", ImageID: "docker.io/library/busybox@" + dig}},
		},
	}
	got := podImages(pod)
	g.Expect(got).To(ConsistOf(
		runningImage{Image: imageref.Image{Repository: "docker.io/library/busybox", Digest: dig}, Containers: []string{"debug", "init"}},
		runningImage{Image: imageref.Image{Repository: "ghcr.io/yourorg/app", Digest: dig}, Containers: []string{"app"}},
		runningImage{Image: imageref.Image{Repository: "ghcr.io/yourorg/proxy", Digest: dig}, Containers: []string{"sidecar"}},
	), "the tag-only container is never resolved")
}

func TestVerificationDue(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	settled := func() *sigwatchv1alpha1.SignedImage {
		return &sigwatchv1alpha1.SignedImage{
			ObjectMeta: metav1.ObjectMeta{Generation: 1, Annotations: map[string]string{sigwatchv1alpha1.ReverifyAnnotation: "7"}},
			Status: sigwatchv1alpha1.SignedImageStatus{
				ObservedGeneration:   1,
				Conditions:           []metav1.Condition{{Type: sigwatchv1alpha1.VerifiedCondition, Status: metav1.ConditionTrue}},
				Policies:             []sigwatchv1alpha1.PolicyResult{{Name: "p", Fingerprint: "f1"}},
				NextVerificationTime: &metav1.Time{Time: now.Add(time.Minute)},
				LastHandledReverify:  "7",
			},
		}
	}
	matched := []matchedPolicy{{name: "p", fingerprint: "f1"}}
	cases := map[string]struct {
		mutate  func(si *sigwatchv1alpha1.SignedImage, m []matchedPolicy) []matchedPolicy
		wantDue bool
	}{
		"settled": {func(_ *sigwatchv1alpha1.SignedImage, m []matchedPolicy) []matchedPolicy { return m }, false},
		"never verified": {func(si *sigwatchv1alpha1.SignedImage, m []matchedPolicy) []matchedPolicy {
			si.Status.Conditions = nil
			return m
		}, true},
		"interval elapsed": {func(si *sigwatchv1alpha1.SignedImage, m []matchedPolicy) []matchedPolicy {
			si.Status.NextVerificationTime.Time = now
			return m
		}, true},
		"reverify annotation": {func(si *sigwatchv1alpha1.SignedImage, m []matchedPolicy) []matchedPolicy {
			si.Annotations[sigwatchv1alpha1.ReverifyAnnotation] = "8"
			return m
		}, true},
		"policy content changed": {func(_ *sigwatchv1alpha1.SignedImage, _ []matchedPolicy) []matchedPolicy {
			return []matchedPolicy{{name: "p", fingerprint: "f2"}}
		}, true},
		"another policy matches": {func(_ *sigwatchv1alpha1.SignedImage, m []matchedPolicy) []matchedPolicy {
			return append(m, matchedPolicy{name: "q"})
		}, true},
		"policy no longer covers": {func(_ *sigwatchv1alpha1.SignedImage, _ []matchedPolicy) []matchedPolicy { return nil }, true},
		"generation not observed": {func(si *sigwatchv1alpha1.SignedImage, m []matchedPolicy) []matchedPolicy { si.Generation = 2; return m }, true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			si := settled()
			m := tc.mutate(si, append([]matchedPolicy(nil), matched...))
			NewWithT(t).Expect(verificationDue(si, m, now)).To(Equal(tc.wantDue))
		})
	}
}

func TestReverifyIntervalJitter(t *testing.T) {
	g := NewWithT(t)
	rnd := rand.New(rand.NewPCG(1, 2))
	matched := []matchedPolicy{{interval: 2 * time.Hour}, {interval: 30 * time.Minute}, {interval: 0}}
	g.Expect(reverifyInterval(matched, time.Hour)).To(Equal(30*time.Minute), "the shortest interval")
	g.Expect(reverifyInterval(nil, time.Hour)).To(Equal(time.Hour), "no policy: the fallback")
	g.Expect(reverifyInterval([]matchedPolicy{{interval: 0}}, time.Hour)).To(Equal(time.Hour), "a policy without an interval (not ready)")
	seen := map[time.Duration]bool{}
	for range 1000 {
		d := jitter(30*time.Minute, rnd)
		g.Expect(d).To(BeNumerically(">=", 27*time.Minute), "-10 %")
		g.Expect(d).To(BeNumerically("<=", 33*time.Minute), "+10 %")
		seen[d.Round(time.Minute)] = true
	}
	g.Expect(len(seen)).To(BeNumerically(">=", 5), "spread over the window")
}

func TestGCDecision(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { return &metav1.Time{Time: now.Add(d)} }
	const grace = 10 * time.Minute
	for _, tc := range []struct {
		name            string
		managed, runs   bool
		unusedSince     *metav1.Time
		wantUnusedSince *metav1.Time
		wantDelete      bool
	}{
		{"running: in use", true, true, nil, nil, false},
		{"running again: the clock stops", true, true, at(-time.Hour), nil, false},
		{"no pod any more: the clock starts", true, false, nil, at(0), false},
		{"unused within the grace", true, false, at(-grace + time.Second), at(-grace + time.Second), false},
		{"unused for exactly the grace: deleted", true, false, at(-grace), at(-grace), true},
		{"unused past the grace: deleted", true, false, at(-time.Hour), at(-time.Hour), true},
		{"hand-made and unused: never deleted, no clock", false, false, nil, nil, false},
		{"hand-made with an old clock (label removed): the clock is cleared, never deleted", false, false, at(-time.Hour), nil, false},
		{"hand-made and running", false, true, at(-time.Hour), nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			unused, del := gcDecision(tc.managed, tc.runs, tc.unusedSince, now, grace)
			g.Expect(del).To(Equal(tc.wantDelete))
			if tc.wantUnusedSince == nil {
				g.Expect(unused).To(BeNil())
			} else {
				g.Expect(unused).NotTo(BeNil())
				g.Expect(unused.Time).To(Equal(tc.wantUnusedSince.Time))
			}
		})
	}
}

func TestVerificationDelay(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	const jittered, minRetry, interval = 55 * time.Minute, 10 * time.Second, time.Hour
	result := func(res sigwatchv1alpha1.PolicyResultType, reason string) sigwatchv1alpha1.PolicyResult {
		return sigwatchv1alpha1.PolicyResult{Name: "p", Result: res, Reason: reason}
	}
	// prev is a status whose last attempt was scheduled again after delay.
	prev := func(delay time.Duration, ps ...sigwatchv1alpha1.PolicyResult) sigwatchv1alpha1.SignedImageStatus {
		return sigwatchv1alpha1.SignedImageStatus{Policies: ps, LastAttemptTime: &metav1.Time{Time: now.Add(-delay)},
			NextVerificationTime: &metav1.Time{Time: now}}
	}
	verified := result(sigwatchv1alpha1.PolicyVerified, sigwatchv1alpha1.VerifiedReason)
	down := result(sigwatchv1alpha1.PolicyUnknown, sigwatchv1alpha1.RegistryUnavailableReason)
	for _, tc := range []struct {
		name      string
		prev      sigwatchv1alpha1.SignedImageStatus
		transient bool
		want      time.Duration
	}{
		{"settled verdict: the jittered interval", prev(time.Hour, verified), false, jittered},
		{"settled failure: the jittered interval", prev(time.Hour, result(sigwatchv1alpha1.PolicyFailed, sigwatchv1alpha1.SignatureMissingReason)), false, jittered},
		{"a policy that is not ready is not retried on a timer", prev(time.Hour, result(sigwatchv1alpha1.PolicyUnknown, sigwatchv1alpha1.PolicyNotReadyReason)), false, jittered},
		{"first transient failure: the minimum", prev(time.Hour, verified), true, minRetry},
		{"first verification fails: the minimum", sigwatchv1alpha1.SignedImageStatus{}, true, minRetry},
		{"second failure: twice the first delay", prev(minRetry, down), true, 2 * minRetry},
		{"a long outage: twice the last delay", prev(10*time.Minute, down), true, 20 * time.Minute},
		{"at most the interval", prev(45*time.Minute, down), true, interval},
		{"a trust root that cannot be read counts too", prev(time.Minute, result(sigwatchv1alpha1.PolicyUnknown, sigwatchv1alpha1.TrustedRootUnavailableReason)), true, 2 * time.Minute},
		{"backs off when another policy failed (Verified is False, not Unknown)",
			prev(time.Minute, result(sigwatchv1alpha1.PolicyFailed, sigwatchv1alpha1.SignatureMissingReason), down), true, 2 * time.Minute},
		{"a forced verification soon after: never below the minimum", prev(time.Second, down), true, minRetry},
	} {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(verificationDelay(tc.prev, tc.transient, jittered, minRetry, interval)).To(Equal(tc.want))
		})
	}
}

func TestAnyTransient(t *testing.T) {
	g := NewWithT(t)
	r := func(res sigwatchv1alpha1.PolicyResultType, reason string) sigwatchv1alpha1.PolicyResult {
		return sigwatchv1alpha1.PolicyResult{Result: res, Reason: reason}
	}
	g.Expect(anyTransient(nil)).To(BeFalse())
	g.Expect(anyTransient([]sigwatchv1alpha1.PolicyResult{r(sigwatchv1alpha1.PolicyVerified, sigwatchv1alpha1.VerifiedReason)})).To(BeFalse())
	g.Expect(anyTransient([]sigwatchv1alpha1.PolicyResult{r(sigwatchv1alpha1.PolicyUnknown, sigwatchv1alpha1.PolicyNotReadyReason)})).To(BeFalse())
	g.Expect(anyTransient([]sigwatchv1alpha1.PolicyResult{r(sigwatchv1alpha1.PolicyFailed, sigwatchv1alpha1.SignatureMissingReason),
		r(sigwatchv1alpha1.PolicyUnknown, sigwatchv1alpha1.RegistryUnavailableReason)})).To(BeTrue(), "one policy failed, another could not read the registry: retry soon")
}

func TestNextVisit(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { return &metav1.Time{Time: now.Add(d)} }
	for _, tc := range []struct {
		name string
		st   sigwatchv1alpha1.SignedImageStatus
		want time.Duration
	}{
		{"next verification", sigwatchv1alpha1.SignedImageStatus{NextVerificationTime: at(time.Hour)}, time.Hour},
		{"garbage collection first", sigwatchv1alpha1.SignedImageStatus{NextVerificationTime: at(time.Hour), UnusedSince: at(-5 * time.Minute)}, 5 * time.Minute},
		{"verification first", sigwatchv1alpha1.SignedImageStatus{NextVerificationTime: at(time.Minute), UnusedSince: at(0)}, time.Minute},
		{"overdue: a second", sigwatchv1alpha1.SignedImageStatus{NextVerificationTime: at(-time.Hour)}, time.Second},
		{"never scheduled: a second", sigwatchv1alpha1.SignedImageStatus{}, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(nextVisit(tc.st, now, 10*time.Minute)).To(Equal(tc.want))
		})
	}
}

func TestSetConditions(t *testing.T) {
	T, F, U := metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionUnknown
	for _, tc := range []struct {
		status               metav1.ConditionStatus
		reason               string
		noMatch              NoMatchPolicy
		wantReady, wantStall metav1.ConditionStatus
	}{
		{T, sigwatchv1alpha1.VerifiedReason, NoMatchIgnore, T, F},
		{T, sigwatchv1alpha1.VerifiedReason, NoMatchWarn, T, F},
		{F, sigwatchv1alpha1.SignatureMissingReason, NoMatchIgnore, F, T},
		{F, sigwatchv1alpha1.UntrustedSignerReason, NoMatchWarn, F, T},
		{F, sigwatchv1alpha1.AttestationFailedReason, NoMatchIgnore, F, T},
		{U, sigwatchv1alpha1.RegistryUnavailableReason, NoMatchIgnore, F, F},
		{U, sigwatchv1alpha1.TrustedRootUnavailableReason, NoMatchWarn, F, F},
		{U, sigwatchv1alpha1.VerificationErrorReason, NoMatchIgnore, F, F},
		{U, sigwatchv1alpha1.PolicyNotReadyReason, NoMatchIgnore, F, T},
		{U, sigwatchv1alpha1.PolicyNotReadyReason, NoMatchWarn, F, T},
		{U, sigwatchv1alpha1.NoMatchingPolicyReason, NoMatchIgnore, T, F},
		{U, sigwatchv1alpha1.NoMatchingPolicyReason, NoMatchWarn, F, T},
	} {
		t.Run(fmt.Sprintf("%s/%s/%s", tc.status, tc.reason, tc.noMatch), func(t *testing.T) {
			g := NewWithT(t)
			var st sigwatchv1alpha1.SignedImageStatus
			now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
			setConditions(&st, verdict{status: tc.status, reason: tc.reason, message: "m"}, 3, tc.noMatch, now)
			for typ, want := range map[string]metav1.ConditionStatus{
				sigwatchv1alpha1.VerifiedCondition: tc.status, sigwatchv1alpha1.ReadyCondition: tc.wantReady, sigwatchv1alpha1.StalledCondition: tc.wantStall,
			} {
				c := meta.FindStatusCondition(st.Conditions, typ)
				g.Expect(c).NotTo(BeNil(), typ)
				g.Expect(c.Status).To(Equal(want), typ)
				g.Expect(c.Reason).To(Equal(tc.reason), typ)
				g.Expect(c.ObservedGeneration).To(Equal(int64(3)), typ)
				g.Expect(c.LastTransitionTime.Time).To(Equal(now), "the injected clock, not the machine's")
			}
		})
	}
}

func TestApplyResultKeepsLastGoodOnTransientFailure(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	good := &verification.Result{
		Policies:   []verification.PolicyResult{{Policy: "p", Result: sigwatchv1alpha1.PolicyVerified, Reason: sigwatchv1alpha1.VerifiedReason, Authority: "ci"}},
		Signatures: []verification.Signature{{Format: sigwatchv1alpha1.SignatureFormatBundle, Subject: "https://github.com/o/r/.github/workflows/release.yml@refs/heads/main", Authority: "ci"}},
	}
	matched := []matchedPolicy{{name: "p", fingerprint: "f"}}
	var st sigwatchv1alpha1.SignedImageStatus
	v := applyResult(&st, good, matched, now)
	g.Expect(v.status).To(Equal(metav1.ConditionTrue))
	g.Expect(st.Summary.Signer).To(Equal(good.Signatures[0].Subject))
	g.Expect(st.LastVerifiedTime.Time).To(Equal(now))
	g.Expect(st.Policies[0].Fingerprint).To(Equal("f"))

	outage := &verification.Result{Policies: []verification.PolicyResult{{Policy: "p", Result: sigwatchv1alpha1.PolicyUnknown, Reason: sigwatchv1alpha1.RegistryUnavailableReason, Message: "connection refused"}}}
	v = applyResult(&st, outage, matched, now.Add(time.Hour))
	g.Expect(v.status).To(Equal(metav1.ConditionUnknown))
	g.Expect(v.reason).To(Equal(sigwatchv1alpha1.RegistryUnavailableReason))
	g.Expect(st.Summary.Signer).To(Equal(good.Signatures[0].Subject), "last good signer kept")
	g.Expect(st.Signatures).To(HaveLen(1))
	g.Expect(st.LastVerifiedTime.Time).To(Equal(now), "last verified time kept")
	g.Expect(st.LastAttemptTime.Time).To(Equal(now.Add(time.Hour)))

	missing := &verification.Result{Policies: []verification.PolicyResult{{Policy: "p", Result: sigwatchv1alpha1.PolicyFailed, Reason: sigwatchv1alpha1.SignatureMissingReason}}}
	v = applyResult(&st, missing, matched, now.Add(2*time.Hour))
	g.Expect(v.status).To(Equal(metav1.ConditionFalse))
	g.Expect(st.Summary.Signer).To(BeEmpty())
	g.Expect(st.Signatures).To(BeEmpty())

	v = applyResult(&st, good, matched, now.Add(3*time.Hour))
	g.Expect(v.status).To(Equal(metav1.ConditionTrue))
	broken := []matchedPolicy{{name: "p", fingerprint: "f"}, {name: "q", errReason: sigwatchv1alpha1.PolicyNotReadyReason, errMessage: "the policy is not ready"}}
	v = applyResult(&st, good, broken, now.Add(4*time.Hour))
	g.Expect(v.status).To(Equal(metav1.ConditionUnknown), "a policy that cannot be used makes the verdict Unknown")
	g.Expect(v.reason).To(Equal(sigwatchv1alpha1.PolicyNotReadyReason))
	g.Expect(st.Policies).To(HaveLen(2))
	g.Expect(st.Summary.Signer).To(Equal(good.Signatures[0].Subject), "not ready is could-not-verify: the last good result is kept")
	g.Expect(st.LastVerifiedTime.Time).To(Equal(now.Add(3 * time.Hour)))

	none := &verification.Result{}
	v = applyResult(&st, none, nil, now.Add(5*time.Hour))
	g.Expect(v.reason).To(Equal(sigwatchv1alpha1.NoMatchingPolicyReason))
	g.Expect(st.Signatures).To(BeEmpty(), "no policy covers the image: no signature was judged")
	g.Expect(st.Summary.Signer).To(BeEmpty())
}

func TestTransitions(t *testing.T) {
	g := NewWithT(t)
	c := func(s metav1.ConditionStatus, r string) *metav1.Condition {
		return &metav1.Condition{Status: s, Reason: r}
	}
	g.Expect(transition(nil, c(metav1.ConditionTrue, "Verified"))).To(BeTrue())
	g.Expect(transition(c(metav1.ConditionTrue, "Verified"), c(metav1.ConditionTrue, "Verified"))).To(BeFalse(), "hourly re-verification: no Event")
	g.Expect(transition(c(metav1.ConditionFalse, "SignatureMissing"), c(metav1.ConditionFalse, "UntrustedSigner"))).To(BeTrue())
	g.Expect(transition(c(metav1.ConditionTrue, "Verified"), c(metav1.ConditionUnknown, "RegistryUnavailable"))).To(BeTrue())
}
