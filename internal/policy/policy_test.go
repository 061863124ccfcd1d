package policy

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/identity"
)

func pemKey(t *testing.T, key any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func ecKey(t *testing.T, curve elliptic.Curve) string {
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pemKey(t, &k.PublicKey)
}

func keyless(identities ...sigwatchv1alpha1.Identity) sigwatchv1alpha1.Authority {
	return sigwatchv1alpha1.Authority{Name: "ci", Keyless: &sigwatchv1alpha1.KeylessAuthority{Identities: identities}}
}

func newPolicy(auths ...sigwatchv1alpha1.Authority) *sigwatchv1alpha1.ImageSignaturePolicy {
	return &sigwatchv1alpha1.ImageSignaturePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Generation: 3},
		Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{
			Images:      []sigwatchv1alpha1.ImagePattern{"ghcr.io/yourorg/**", "nginx"},
			Authorities: auths,
		},
	}
}

const (
	ghIssuer  = "https://token.actions.githubusercontent.com"
	ghSubject = "https://github.com/yourorg/app/.github/workflows/release.yml@refs/heads/main"
)

func TestCompileKeylessAnchorsRegexps(t *testing.T) {
	g := NewWithT(t)
	p, err := Compile(newPolicy(keyless(sigwatchv1alpha1.Identity{
		IssuerRegExp:  `https://token\.actions\.githubusercontent\.com`,
		SubjectRegExp: `https://github\.com/yourorg/app/\.github/workflows/release\.yml@refs/heads/main`,
	})), Inputs{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(p.Generation).To(BeEquivalentTo(3))
	g.Expect(p.ReverifyInterval).To(Equal(time.Hour))
	g.Expect(p.Authorities[0].Keyless()).To(BeTrue())
	g.Expect(p.Authorities[0].TransparencyLog).To(Equal(sigwatchv1alpha1.TransparencyLogRequired))

	ids := p.Authorities[0].Identities
	_, err = ids.Match(identity.Claims{Subject: ghSubject, Extensions: certificate.Extensions{Issuer: ghIssuer}})
	g.Expect(err).NotTo(HaveOccurred())
	for _, bad := range []identity.Claims{
		{Subject: ghSubject + "-evil", Extensions: certificate.Extensions{Issuer: ghIssuer}},
		{Subject: "x" + ghSubject, Extensions: certificate.Extensions{Issuer: ghIssuer}},
		{Subject: ghSubject, Extensions: certificate.Extensions{Issuer: ghIssuer + ".evil.com"}},
	} {
		_, err = ids.Match(bad)
		g.Expect(err).To(HaveOccurred(), "unanchored match must not pass: %+v", bad)
	}
}

func TestCompileGitHubWorkflowClaims(t *testing.T) {
	g := NewWithT(t)
	p, err := Compile(newPolicy(keyless(sigwatchv1alpha1.Identity{
		Issuer: ghIssuer, Subject: ghSubject,
		GitHubWorkflow: &sigwatchv1alpha1.GitHubWorkflowClaims{Repository: "yourorg/app", Ref: "refs/heads/main"},
	})), Inputs{})
	g.Expect(err).NotTo(HaveOccurred())
	good := identity.Claims{Subject: ghSubject, Extensions: certificate.Extensions{
		Issuer: ghIssuer, GithubWorkflowRepository: "yourorg/app", GithubWorkflowRef: "refs/heads/main", GithubWorkflowTrigger: "push"}}
	_, err = p.Authorities[0].Identities.Match(good)
	g.Expect(err).NotTo(HaveOccurred())
	bad := good
	bad.GithubWorkflowRef = "refs/pull/1/merge"
	_, err = p.Authorities[0].Identities.Match(bad)
	g.Expect(err).To(HaveOccurred())
}

func TestCompileKeys(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	smallRSA, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		pem     string
		wantErr string
	}{
		{"P-256", ecKey(t, elliptic.P256()), ""},
		{"P-384", ecKey(t, elliptic.P384()), ""},
		{"RSA 2048", pemKey(t, &rsaKey.PublicKey), ""},
		{"RSA 3072", pemKey(t, rsaOfSize(3072)), ""},
		{"RSA 4096", pemKey(t, rsaOfSize(4096)), ""},
		{"Ed25519", pemKey(t, edKey(t)), ""},
		{"RSA in PKCS #1", string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey)})), ""},
		{"P-521 refused", ecKey(t, elliptic.P521()), "P-521"},
		{"RSA 1024 refused", pemKey(t, &smallRSA.PublicKey), "RSA key of 1024 bits is not accepted"},
		{"RSA 8192 refused (the verifier could not use it)", pemKey(t, rsaOfSize(8192)), "RSA key of 8192 bits is not accepted"},
		{"RSA of an odd size refused", pemKey(t, rsaOfSize(2560)), "RSA key of 2560 bits is not accepted"},
		{"a certificate is not a key", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}})), `PEM block is "CERTIFICATE"`},
		{"not PEM", "ssh-ed25519 AAAA", "no PEM block"},
		{"truncated DER", "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n", "parsing public key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			pol := newPolicy(sigwatchv1alpha1.Authority{Name: "k", Key: &sigwatchv1alpha1.KeyAuthority{PublicKey: tc.pem}})
			p, err := Compile(pol, Inputs{})
			if tc.wantErr == "" {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(p.Authorities[0].KeyID).To(HaveLen(64))
				return
			}
			var perr *Error
			g.Expect(errors.As(err, &perr)).To(BeTrue())
			g.Expect(perr.Reason).To(Equal(sigwatchv1alpha1.KeyUnavailableReason))
			g.Expect(perr.Field).To(Equal("spec.authorities[0].key.publicKey"))
			g.Expect(err.Error()).To(ContainSubstring(tc.wantErr))
		})
	}
}

func TestCompileSecretRef(t *testing.T) {
	g := NewWithT(t)
	ref := sigwatchv1alpha1.SecretKeyReference{Name: "cosign", Namespace: "ns", Key: "cosign.pub"}
	pol := newPolicy(sigwatchv1alpha1.Authority{Name: "k", Key: &sigwatchv1alpha1.KeyAuthority{SecretRef: &ref}})
	_, err := Compile(pol, Inputs{})
	g.Expect(err).To(MatchError(ContainSubstring("spec.authorities[0].key.secretRef")))

	_, err = Compile(pol, Inputs{SecretKey: func(sigwatchv1alpha1.SecretKeyReference) ([]byte, error) {
		return nil, errors.New(`Secret ns/cosign not found`)
	}})
	var perr *Error
	g.Expect(errors.As(err, &perr)).To(BeTrue())
	g.Expect(perr.Reason).To(Equal(sigwatchv1alpha1.KeyUnavailableReason))

	key := ecKey(t, elliptic.P256())
	p1, err := Compile(pol, Inputs{SecretKey: func(sigwatchv1alpha1.SecretKeyReference) ([]byte, error) { return []byte(key), nil }})
	g.Expect(err).NotTo(HaveOccurred())
	other := ecKey(t, elliptic.P256())
	p2, err := Compile(pol, Inputs{SecretKey: func(sigwatchv1alpha1.SecretKeyReference) ([]byte, error) { return []byte(other), nil }})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(p1.Hash).NotTo(Equal(p2.Hash), "a rotated key in the Secret changes the policy hash")
}

func TestCompileErrorsNameTheField(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(p *sigwatchv1alpha1.ImageSignaturePolicy)
		field  string
		reason string
	}{
		{"bad subject regexp", func(p *sigwatchv1alpha1.ImageSignaturePolicy) {
			p.Spec.Authorities = []sigwatchv1alpha1.Authority{keyless(sigwatchv1alpha1.Identity{Issuer: ghIssuer, SubjectRegExp: "(unclosed"})}
		}, "spec.authorities[0].keyless.identities[0].subjectRegExp", sigwatchv1alpha1.InvalidPolicyReason},
		{"bad issuer regexp", func(p *sigwatchv1alpha1.ImageSignaturePolicy) {
			p.Spec.Authorities = []sigwatchv1alpha1.Authority{keyless(sigwatchv1alpha1.Identity{IssuerRegExp: "[", Subject: "s"})}
		}, "spec.authorities[0].keyless.identities[0].issuerRegExp", sigwatchv1alpha1.InvalidPolicyReason},
		{"missing subject", func(p *sigwatchv1alpha1.ImageSignaturePolicy) {
			p.Spec.Authorities = []sigwatchv1alpha1.Authority{keyless(sigwatchv1alpha1.Identity{Issuer: ghIssuer})}
		}, "spec.authorities[0].keyless.identities[0]", sigwatchv1alpha1.InvalidPolicyReason},
		{"bad glob", func(p *sigwatchv1alpha1.ImageSignaturePolicy) {
			p.Spec.Images = []sigwatchv1alpha1.ImagePattern{"ghcr.io/[x"}
		}, "spec.images[0]", sigwatchv1alpha1.InvalidPolicyReason},
		{"CEL does not compile", func(p *sigwatchv1alpha1.ImageSignaturePolicy) {
			p.Spec.Attestations = []sigwatchv1alpha1.Attestation{{Name: "slsa", PredicateType: "https://slsa.dev/provenance/v1", Conditions: []string{"true", "predicate.builder.id =="}}}
		}, "spec.attestations[0].conditions[1]", sigwatchv1alpha1.InvalidPolicyReason},
		{"CEL not boolean", func(p *sigwatchv1alpha1.ImageSignaturePolicy) {
			p.Spec.Attestations = []sigwatchv1alpha1.Attestation{{Name: "slsa", PredicateType: "https://slsa.dev/provenance/v1", Conditions: []string{`"yes"`}}}
		}, "spec.attestations[0].conditions[0]", sigwatchv1alpha1.InvalidPolicyReason},
		{"keyless with log disabled", func(p *sigwatchv1alpha1.ImageSignaturePolicy) {
			a := keyless(sigwatchv1alpha1.Identity{Issuer: ghIssuer, Subject: ghSubject})
			a.TransparencyLog = &sigwatchv1alpha1.TransparencyLogPolicy{Mode: sigwatchv1alpha1.TransparencyLogDisabled}
			p.Spec.Authorities = []sigwatchv1alpha1.Authority{a}
		}, "spec.authorities[0].transparencyLog.mode", sigwatchv1alpha1.InvalidPolicyReason},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			p := newPolicy(keyless(sigwatchv1alpha1.Identity{Issuer: ghIssuer, Subject: ghSubject}))
			tc.mutate(p)
			_, err := Compile(p, Inputs{})
			var perr *Error
			g.Expect(errors.As(err, &perr)).To(BeTrue(), "got %v", err)
			g.Expect(perr.Field).To(Equal(tc.field))
			g.Expect(perr.Reason).To(Equal(tc.reason))
			g.Expect(err.Error()).To(ContainSubstring(tc.field))
		})
	}
}

func TestAttestationConditions(t *testing.T) {
	g := NewWithT(t)
	p := newPolicy(keyless(sigwatchv1alpha1.Identity{Issuer: ghIssuer, Subject: ghSubject}))
	p.Spec.Attestations = []sigwatchv1alpha1.Attestation{{Name: "slsa", PredicateType: "https://slsa.dev/provenance/v1", Conditions: []string{
		`predicate.runDetails.builder.id == "https://github.com/actions/runner"`,
		`predicate.buildDefinition.buildType.startsWith("https://actions.github.io/")`,
	}}}
	cp, err := Compile(p, Inputs{})
	g.Expect(err).NotTo(HaveOccurred())
	var pred any
	g.Expect(json.Unmarshal([]byte(`{"buildDefinition":{"buildType":"https://actions.github.io/buildtypes/workflow/v1"},
		"runDetails":{"builder":{"id":"https://github.com/actions/runner"}}}`), &pred)).To(Succeed())
	for _, c := range cp.Attestations[0].Conditions {
		ok, err := c.Eval(context.Background(), pred)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(ok).To(BeTrue())
	}
	g.Expect(json.Unmarshal([]byte(`{"runDetails":{"builder":{"id":"https://evil.example/builder"}}}`), &pred)).To(Succeed())
	ok, err := cp.Attestations[0].Conditions[0].Eval(context.Background(), pred)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ok).To(BeFalse())
	ok, err = cp.Attestations[0].Conditions[1].Eval(context.Background(), pred)
	g.Expect(ok).To(BeFalse())
	g.Expect(err).To(MatchError(ContainSubstring("buildDefinition")), "a missing field is false, with the reason")
}

func TestMatches(t *testing.T) {
	g := NewWithT(t)
	p := newPolicy(keyless(sigwatchv1alpha1.Identity{Issuer: ghIssuer, Subject: ghSubject}))
	p.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}
	cp, err := Compile(p, Inputs{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cp.Covers("ghcr.io/yourorg/app", labels.Set{"team": "a"})).To(BeTrue())
	g.Expect(cp.Covers("ghcr.io/yourorg/app", labels.Set{"team": "b"})).To(BeFalse())
	g.Expect(cp.Covers("docker.io/library/nginx", labels.Set{"team": "a"})).To(BeTrue())
	g.Expect(cp.Covers("ghcr.io/other/app", labels.Set{"team": "a"})).To(BeFalse())
	g.Expect(cp.Covers("ghcr.io/yourorg/app", nil)).To(BeTrue(), "no namespace: the CLI")
}

// rsaOfSize is an RSA public key with a modulus of exactly bits bits (not a product of two primes: only
// its size matters to what is accepted, and generating a real 8192-bit key takes seconds).
func rsaOfSize(bits int) *rsa.PublicKey {
	n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
	n.Add(n, big.NewInt(1))
	return &rsa.PublicKey{N: n, E: 65537}
}

func edKey(t *testing.T) ed25519.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}
