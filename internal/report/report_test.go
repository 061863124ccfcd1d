package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
)

const (
	issuer  = "https://token.actions.githubusercontent.com"
	release = "https://github.com/yourorg/app/.github/workflows/release.yaml@refs/heads/main"
	nightly = "https://github.com/yourorg/app/.github/workflows/nightly.yaml@refs/heads/main"
	keyID   = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func digest(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }

func keyless(subject string, at time.Time) sigwatchv1alpha1.SignatureInfo {
	s := sigwatchv1alpha1.SignatureInfo{Format: sigwatchv1alpha1.SignatureFormatBundle, Verdict: sigwatchv1alpha1.SignatureAccepted,
		Authority: "ci", Subject: subject, Issuer: issuer}
	if !at.IsZero() {
		s.SignedTime, s.SignedTimeSource = &metav1.Time{Time: at}, sigwatchv1alpha1.SignedTimeTimestampAuthority
	}
	return s
}

func si(ns, name string, c byte, verified metav1.ConditionStatus, reason string, sigs ...sigwatchv1alpha1.SignatureInfo) sigwatchv1alpha1.SignedImage {
	result := map[metav1.ConditionStatus]sigwatchv1alpha1.PolicyResultType{metav1.ConditionTrue: sigwatchv1alpha1.PolicyVerified,
		metav1.ConditionFalse: sigwatchv1alpha1.PolicyFailed, metav1.ConditionUnknown: sigwatchv1alpha1.PolicyUnknown}[verified]
	return sigwatchv1alpha1.SignedImage{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       sigwatchv1alpha1.SignedImageSpec{Image: "ghcr.io/yourorg/" + name, Digest: digest(c)},
		Status: sigwatchv1alpha1.SignedImageStatus{
			Conditions: []metav1.Condition{{Type: sigwatchv1alpha1.VerifiedCondition, Status: verified, Reason: reason, Message: "because\nof " + reason}},
			Policies:   []sigwatchv1alpha1.PolicyResult{{Name: "release", Result: result, Reason: reason}},
			Signatures: sigs,
			Workloads:  []sigwatchv1alpha1.WorkloadReference{{Kind: "Deployment", Name: name}},
		},
	}
}

func fleet() []sigwatchv1alpha1.SignedImage {
	rejected := keyless("https://github.com/someone/else/.github/workflows/x.yaml@refs/heads/main", t0)
	rejected.Verdict, rejected.Reason, rejected.Authority = sigwatchv1alpha1.SignatureRejected, sigwatchv1alpha1.UntrustedSignerReason, ""
	key := sigwatchv1alpha1.SignatureInfo{Format: sigwatchv1alpha1.SignatureFormatLegacy, Verdict: sigwatchv1alpha1.SignatureAccepted, KeyID: keyID}
	return []sigwatchv1alpha1.SignedImage{
		si("shop", "web", 'a', metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason, keyless(release, t0.Add(time.Hour))),
		si("shop", "api", 'b', metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason, keyless(release, t0.Add(2*time.Hour)), keyless(nightly, t0.Add(2*time.Hour))),
		si("shop", "rogue", 'c', metav1.ConditionFalse, sigwatchv1alpha1.UntrustedSignerReason, rejected),
		si("batch", "old", 'd', metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason, keyless(release, t0.Add(-24*time.Hour))),
		si("batch", "legacy", 'e', metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason, key),
		si("batch", "flaky", 'f', metav1.ConditionUnknown, sigwatchv1alpha1.RegistryUnavailableReason),
		unused(si("batch", "gone", 'g', metav1.ConditionFalse, sigwatchv1alpha1.SignatureMissingReason)),
	}
}

// unused is a SignedImage that no pod runs any more, waiting for garbage collection: not counted.
func unused(s sigwatchv1alpha1.SignedImage) sigwatchv1alpha1.SignedImage {
	s.Status.UnusedSince = &metav1.Time{Time: t0}
	return s
}

func TestCounts(t *testing.T) {
	g := NewWithT(t)
	r, err := Build(fleet(), Options{Now: t0})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Totals).To(Equal(Counts{Images: 6, Verified: 4, Failed: 1, Unknown: 1}))
	g.Expect(r.Namespaces).To(Equal([]NamespaceCounts{
		{"batch", Counts{Images: 3, Verified: 2, Unknown: 1}},
		{"shop", Counts{Images: 3, Verified: 2, Failed: 1}},
	}))
	g.Expect(r.Policies).To(Equal([]PolicyCounts{{"release", Counts{Images: 6, Verified: 4, Failed: 1, Unknown: 1}}}))
	g.Expect(r.Signers).To(Equal([]Signer{
		{Issuer: issuer, Subject: release, Images: 3},
		{Issuer: issuer, Subject: nightly, Images: 1},
		{KeyID: keyID, Images: 1},
	}), "accepted signatures only, most images first; a rejected signer is not behind what runs")
	g.Expect(r.Failing).To(HaveLen(1))
	g.Expect(r.Failing[0]).To(And(HaveField("Name", "rogue"), HaveField("Reason", sigwatchv1alpha1.UntrustedSignerReason),
		HaveField("Workloads", []string{"Deployment/rogue"}), HaveField("Why", "because of UntrustedSigner")))
	g.Expect(r.Totals.Share(r.Totals.Verified)).To(BeNumerically("~", 66.67, 0.01))
}

func names(imgs []Image) []string {
	var out []string
	for _, i := range imgs {
		out = append(out, i.Namespace+"/"+i.Name)
	}
	return out
}

func TestFilterBySignerAndWindow(t *testing.T) {
	g := NewWithT(t)
	for _, c := range []struct {
		name   string
		filter Filter
		want   []string
	}{
		{"signer", Filter{Signer: release}, []string{"batch/old", "shop/api", "shop/web"}},
		{"signer in the window", Filter{Signer: release, SignedAfter: t0, SignedBefore: t0.Add(90 * time.Minute)}, []string{"shop/web"}},
		{"at signedBefore is outside", Filter{Signer: release, SignedAfter: t0, SignedBefore: t0.Add(time.Hour)}, nil},
		{"regexp", Filter{SignerRegExp: "https://github.com/yourorg/app/.+nightly.+"}, []string{"shop/api"}},
		{"issuer only", Filter{Issuer: "https://gitlab.com"}, nil},
		{"window only, any signer", Filter{SignedAfter: t0}, []string{"batch/legacy", "shop/api", "shop/web"}},
		{"digest", Filter{Digests: []string{digest('b')}}, []string{"shop/api"}},
		{"digest and signer", Filter{Digests: []string{digest('b')}, Signer: nightly}, []string{"shop/api"}},
		{"a rejected signature's claim is not a signer", Filter{SignerRegExp: "https://github.com/someone/.+"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := Build(fleet(), Options{Now: t0, Filter: c.filter})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(names(r.Matches)).To(ConsistOf(c.want))
		})
	}
	r, _ := Build(fleet(), Options{Filter: Filter{SignedAfter: t0}})
	for _, m := range r.Matches {
		if m.Name == "legacy" {
			g.Expect(m.Signatures[0].Note).To(ContainSubstring("no trusted signing time"), "a key signature without a time is listed, with why")
		}
	}
	_, err := Build(fleet(), Options{Filter: Filter{SignerRegExp: "(unclosed"}})
	g.Expect(err).To(MatchError(ContainSubstring("subjectRegExp")))
}

func TestPrediction(t *testing.T) {
	g := NewWithT(t)
	x := &sigwatchv1alpha1.SignatureRevocation{ObjectMeta: metav1.ObjectMeta{Name: "incident"},
		Spec: sigwatchv1alpha1.SignatureRevocationSpec{Reason: "INC-4711", Signatures: []sigwatchv1alpha1.RevokedSignatures{
			{Keyless: &sigwatchv1alpha1.Identity{Issuer: issuer, SubjectRegExp: "https://github.com/yourorg/app/.+release.+"},
				SignedAfter: &metav1.Time{Time: t0}, SignedBefore: &metav1.Time{Time: t0.Add(3 * time.Hour)}},
			{Key: &sigwatchv1alpha1.RevokedKey{PublicKey: "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n"}},
		}}}
	r, err := Build(fleet(), Options{Revocation: x})
	g.Expect(err).NotTo(HaveOccurred())
	p := r.Prediction
	g.Expect(p.Affected).To(Equal(2))
	g.Expect(p.WouldFail).To(Equal(1))
	byName := map[string]bool{}
	for _, img := range p.Images {
		byName[img.Name] = img.WouldFail
	}
	g.Expect(byName).To(Equal(map[string]bool{"web": true, "api": false}), "api keeps its nightly signature; old was signed before the window")
	g.Expect(p.Invalid).To(ContainSubstring("spec.signatures[1].key.publicKey"))

	// A key entry with a window against a key signature without a trusted time: not revoked, and said.
	untimed := &sigwatchv1alpha1.SignatureRevocation{ObjectMeta: metav1.ObjectMeta{Name: "window"},
		Spec: sigwatchv1alpha1.SignatureRevocationSpec{Reason: "r", Signatures: []sigwatchv1alpha1.RevokedSignatures{
			{Digests: []string{digest('e')}, SignedAfter: &metav1.Time{Time: t0}}}}}
	r, _ = Build(fleet(), Options{Revocation: untimed})
	g.Expect(r.Prediction.Affected).To(BeZero())
	g.Expect(names(r.Prediction.Untimed)).To(ConsistOf("batch/legacy"))

	// An applied revocation, edited: the signatures it revoked count as accepted.
	applied := fleet()
	applied[0].Status.Signatures[0].Verdict, applied[0].Status.Signatures[0].Reason = sigwatchv1alpha1.SignatureRejected, sigwatchv1alpha1.SignatureRevokedReason
	applied[0].Status.Signatures[0].Revocation = "incident"
	r, _ = Build(applied, Options{Revocation: x})
	g.Expect(r.Prediction.Affected).To(Equal(2))
}

func TestRenderings(t *testing.T) {
	g := NewWithT(t)
	x := &sigwatchv1alpha1.SignatureRevocation{ObjectMeta: metav1.ObjectMeta{Name: "incident"},
		Spec: sigwatchv1alpha1.SignatureRevocationSpec{Reason: "INC-4711", Signatures: []sigwatchv1alpha1.RevokedSignatures{{Digests: []string{digest('a')}}}}}
	r, err := Build(fleet(), Options{Now: t0, Context: "prod", Revocation: x, Filter: Filter{Signer: release}})
	g.Expect(err).NotTo(HaveOccurred())
	var text, md, js bytes.Buffer
	r.Text(&text)
	r.Markdown(&md)
	g.Expect(r.JSON(&js)).To(Succeed())
	g.Expect(text.String()).To(And(ContainSubstring("sigwatch report of context prod"), ContainSubstring("4 (67%)"),
		ContainSubstring("would affect 1 image; 1 would turn Verified=False (INC-4711)"), ContainSubstring("Images signed as signer="+release+" (3)")))
	g.Expect(md.String()).To(And(ContainSubstring("# sigwatch report of context prod"), ContainSubstring("| NAMESPACE | IMAGES | VERIFIED | FAILED | UNKNOWN |"),
		ContainSubstring("|---|---|---|---|---|")))
	var back Report
	g.Expect(json.Unmarshal(js.Bytes(), &back)).To(Succeed())
	g.Expect(back.Totals).To(Equal(r.Totals))
	g.Expect(back.Prediction.WouldFail).To(Equal(1))
}
