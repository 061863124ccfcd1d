package revocation

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/identity"
)

const (
	ghIssuer = "https://token.actions.githubusercontent.com"
	release  = "https://github.com/yourorg/yourrepo/.github/workflows/release.yaml@refs/heads/main"
	other    = "https://github.com/yourorg/other/.github/workflows/release.yaml@refs/heads/main"
	digestA  = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB  = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func mt(s string) *metav1.Time { return &metav1.Time{Time: at(s)} }

func newKey(t *testing.T) (pemKey, keyID string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), hex.EncodeToString(sum[:])
}

func keyless(subject string, when string) Signature {
	s := Signature{Claims: identity.FromAPI(subject, ghIssuer, &sigwatchv1alpha1.CertificateClaims{
		SourceRepositoryURI: "https://github.com/yourorg/yourrepo", SourceRepositoryRef: "refs/heads/main"}), Digests: []string{digestA}}
	if when != "" {
		s.Time, s.TimeSource = at(when), "transparency log"
	}
	return s
}

func compile(t *testing.T, name, reason string, entries ...sigwatchv1alpha1.RevokedSignatures) *Revocation {
	t.Helper()
	r, err := Compile(&sigwatchv1alpha1.SignatureRevocation{ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1},
		Spec: sigwatchv1alpha1.SignatureRevocationSpec{Reason: reason, Signatures: entries}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestMatch(t *testing.T) {
	pemKey, keyID := newKey(t)
	_, otherKeyID := newKey(t)
	window := sigwatchv1alpha1.RevokedSignatures{
		Keyless:     &sigwatchv1alpha1.Identity{Issuer: ghIssuer, SubjectRegExp: "https://github.com/yourorg/yourrepo/.+"},
		SignedAfter: mt("2026-12-01T10:00:00Z"), SignedBefore: mt("2026-12-01T14:00:00Z"),
	}
	set := NewSet(compile(t, "incident", "CI token leaked; INC-4711", window,
		sigwatchv1alpha1.RevokedSignatures{Key: &sigwatchv1alpha1.RevokedKey{PublicKey: pemKey}},
		sigwatchv1alpha1.RevokedSignatures{Digests: []string{digestB}}))
	for _, c := range []struct {
		name     string
		sig      Signature
		hit      int // -1: not revoked
		misses   int
		mayMatch bool
	}{
		{"in the window", keyless(release, "2026-12-01T11:00:00Z"), 0, 0, true},
		{"at signedAfter", keyless(release, "2026-12-01T10:00:00Z"), 0, 0, true},
		{"at signedBefore: outside", keyless(release, "2026-12-01T14:00:00Z"), -1, 0, true},
		{"before the window", keyless(release, "2026-12-01T09:59:59Z"), -1, 0, true},
		{"re-signed after the window", keyless(release, "2026-12-02T09:00:00Z"), -1, 0, true},
		{"other repository in the window", keyless(other, "2026-12-01T11:00:00Z"), -1, 0, false},
		{"no trusted time: a window never matches", keyless(release, ""), -1, 1, true},
		{"other issuer", Signature{Claims: identity.FromAPI(release, "https://gitlab.com", nil), Time: at("2026-12-01T11:00:00Z")}, -1, 0, false},
		{"the key, no time needed", Signature{KeyID: keyID, Digests: []string{digestA}}, 1, 0, true},
		{"another key", Signature{KeyID: otherKeyID, Digests: []string{digestA}}, -1, 0, false},
		{"a key signature never matches keyless", Signature{KeyID: otherKeyID, Time: at("2026-12-01T11:00:00Z")}, -1, 0, false},
		{"the digest signed", Signature{KeyID: otherKeyID, Digests: []string{digestB}}, 2, 0, true},
		{"the digest that runs (an index signed)", Signature{KeyID: otherKeyID, Digests: []string{digestA, digestB}}, 2, 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			hit, misses := set.Match(c.sig)
			switch {
			case c.hit < 0 && hit != nil:
				t.Fatalf("revoked by entry %d, want not revoked", hit.Entry)
			case c.hit >= 0 && (hit == nil || hit.Entry != c.hit):
				t.Fatalf("hit %+v, want entry %d", hit, c.hit)
			}
			if len(misses) != c.misses {
				t.Fatalf("misses %v, want %d", misses, c.misses)
			}
			if got := set.MaySigner(c.sig); got != c.mayMatch {
				t.Fatalf("MaySigner = %t, want %t", got, c.mayMatch)
			}
			if hit != nil && (hit.Revocation != "incident" || hit.Reason != "CI token leaked; INC-4711") {
				t.Fatalf("hit %+v", hit)
			}
		})
	}
}

func TestMessagesNameTheRevocationTheWindowAndTheReason(t *testing.T) {
	set := NewSet(compile(t, "incident", "INC-4711", sigwatchv1alpha1.RevokedSignatures{
		Keyless:     &sigwatchv1alpha1.Identity{Issuer: ghIssuer, Subject: release},
		SignedAfter: mt("2026-12-01T10:00:00Z"), SignedBefore: mt("2026-12-01T14:00:00Z"),
	}))
	hit, _ := set.Match(keyless(release, "2026-12-01T11:00:00Z"))
	want := "signature by " + release + " is revoked by SignatureRevocation incident (spec.signatures[0], signed from 2026-12-01T10:00:00Z to 2026-12-01T14:00:00Z): INC-4711"
	if got := hit.Message(release); got != want {
		t.Fatalf("message\n%s\nwant\n%s", got, want)
	}
	_, misses := set.Match(keyless(release, ""))
	if len(misses) != 1 || !strings.Contains(misses[0].Note(release), "has no trusted signing time") {
		t.Fatalf("misses %v", misses)
	}
}

func TestClaimsNarrowAKeylessEntry(t *testing.T) {
	set := NewSet(compile(t, "tags", "tag builds", sigwatchv1alpha1.RevokedSignatures{Keyless: &sigwatchv1alpha1.Identity{
		IssuerRegExp: ".*", SubjectRegExp: ".*", ClaimsRegExp: &sigwatchv1alpha1.CertificateClaims{SourceRepositoryRef: "refs/tags/v1\\..*"}}}))
	tagged := Signature{Claims: identity.FromAPI(release, ghIssuer, &sigwatchv1alpha1.CertificateClaims{SourceRepositoryRef: "refs/tags/v1.2.0"})}
	if hit, _ := set.Match(tagged); hit == nil {
		t.Fatal("a signature with the claim is not revoked")
	}
	if hit, _ := set.Match(keyless(release, "2026-12-01T11:00:00Z")); hit != nil {
		t.Fatal("a signature of another ref is revoked")
	}
	if hit, _ := set.Match(Signature{Claims: identity.FromAPI(release, ghIssuer, nil)}); hit != nil {
		t.Fatal("a signature without the claim is revoked (an absent claim never matches)")
	}
}

func TestFirstRevocationByNameWins(t *testing.T) {
	entry := sigwatchv1alpha1.RevokedSignatures{Digests: []string{digestA}}
	set := NewSet(compile(t, "zeta", "z", entry), compile(t, "alpha", "a", entry))
	hit, _ := set.Match(Signature{Digests: []string{digestA}})
	if hit.Revocation != "alpha" {
		t.Fatalf("hit %s, want alpha", hit.Revocation)
	}
	if NewSet().Len() != 0 || (*Set)(nil).MaySigner(Signature{}) {
		t.Fatal("an empty set revokes")
	}
}

func TestCompileKeepsTheEntriesThatCompileAndNamesTheOthers(t *testing.T) {
	_, keyID := newKey(t)
	r, err := Compile(&sigwatchv1alpha1.SignatureRevocation{ObjectMeta: metav1.ObjectMeta{Name: "mixed"},
		Spec: sigwatchv1alpha1.SignatureRevocationSpec{Reason: "r", Signatures: []sigwatchv1alpha1.RevokedSignatures{
			{Keyless: &sigwatchv1alpha1.Identity{Issuer: ghIssuer, SubjectRegExp: "(unclosed"}},
			{Key: &sigwatchv1alpha1.RevokedKey{PublicKey: "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n"}},
			{Keyless: &sigwatchv1alpha1.Identity{Issuer: ghIssuer, Subject: release, GitHubWorkflow: &sigwatchv1alpha1.GitHubWorkflowClaims{Ref: "refs/heads/main"}}},
			{Digests: []string{digestA}, SignedAfter: mt("2026-12-02T00:00:00Z"), SignedBefore: mt("2026-12-01T00:00:00Z")},
			{},
			{Digests: []string{digestB}},
		}}})
	for _, field := range []string{"spec.signatures[0].keyless.subjectRegExp", "spec.signatures[1].key.publicKey",
		"spec.signatures[2].keyless.githubWorkflow", "spec.signatures[3].signedAfter", "spec.signatures[4]: exactly one"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("error %v does not name %s", err, field)
		}
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %T is not a FieldError", err)
	}
	if len(r.Entries) != 1 || r.Entries[0].Index != 5 {
		t.Fatalf("entries %+v, want only spec.signatures[5]", r.Entries)
	}
	if hit, _ := NewSet(r).Match(Signature{KeyID: keyID, Digests: []string{digestB}}); hit == nil || hit.Entry != 5 {
		t.Fatalf("the entry that compiled does not apply: %+v", hit)
	}
}
