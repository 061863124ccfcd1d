package bundleverify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/sigwatch/sigwatch/internal/trust"
	"github.com/sigwatch/sigwatch/test/sigstore"
)

func TestMismatchMessage(t *testing.T) {
	log := Anchor{ID: `keyId "AAA="`}
	pgLog := Anchor{ID: `keyId "wNI="`, PublicGood: "https://rekor.sigstore.dev"}
	ca := &Anchor{ID: `issuer "CN=x"`}
	tsa := Anchor{ID: `subject "CN=tsa"`}
	for _, tc := range []struct {
		m    Mismatch
		want string
	}{
		{Mismatch{Logs: []Anchor{log}, TrustRoot: "public-good (TUF)"},
			`its transparency log (keyId "AAA=") is not in the trust root public-good (TUF)`},
		{Mismatch{Logs: []Anchor{pgLog}, TrustRoot: "ConfigMap a/b"},
			`its transparency log (keyId "wNI=", which the public-good Sigstore lists as https://rekor.sigstore.dev) is not in the trust root ConfigMap a/b`},
		{Mismatch{Logs: []Anchor{log, pgLog}, TrustRoot: "r"},
			`its transparency logs (keyId "AAA="; keyId "wNI=", which the public-good Sigstore lists as https://rekor.sigstore.dev) are not in the trust root r`},
		{Mismatch{CA: ca, TrustRoot: "r"}, `its certificate authority (issuer "CN=x") is not in the trust root r`},
		{Mismatch{TSAs: []Anchor{tsa, tsa}, TrustRoot: "r"}, `its timestamp authorities (subject "CN=tsa"; subject "CN=tsa") are not in the trust root r`},
		{Mismatch{Logs: []Anchor{log}, CA: ca, TrustRoot: "r"},
			`its transparency log (keyId "AAA=") and certificate authority (issuer "CN=x") are not in the trust root r`},
		{Mismatch{Logs: []Anchor{log}, CA: ca, TSAs: []Anchor{tsa}, TrustRoot: "r"},
			`its transparency log (keyId "AAA="), certificate authority (issuer "CN=x") and timestamp authority (subject "CN=tsa") are not in the trust root r`},
	} {
		NewWithT(t).Expect(tc.m.Error()).To(Equal(tc.want))
	}
}

func TestQuotedBoundsWhatTheBundleSays(t *testing.T) {
	g := NewWithT(t)
	g.Expect([]rune(quoted(strings.Repeat("a", 500)))).To(HaveLen(120+len(`"…"`)-2), "cut to 120 characters, an ellipsis and quotes")
	g.Expect(quoted("CN=\"x\"\n")).To(Equal(`"CN=\"x\"\n"`), "quoted, control characters escaped")
}

// pki issues test certificates.
type pki struct{ t *testing.T }

func (p pki) key() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	return k
}

// cert issues a certificate for key, named cn, signed by signer as parent (self-signed when parent is nil).
func (p pki) cert(cn string, ca bool, key *ecdsa.PrivateKey, parent *x509.Certificate, signer *ecdsa.PrivateKey) *x509.Certificate {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, Organization: []string{"sigstore.dev"}},
		NotBefore: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC), BasicConstraintsValid: true, IsCA: ca,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	if parent == nil {
		parent, signer = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		p.t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

func fulcioRoot(t *testing.T, cas ...*root.FulcioCertificateAuthority) root.TrustedMaterial {
	t.Helper()
	list := make([]root.CertificateAuthority, 0, len(cas))
	for _, ca := range cas {
		list = append(list, ca)
	}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, list, map[string]*root.TransparencyLog{}, nil, map[string]*root.TransparencyLog{})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestCAOf: a certificate's CA is in the root when a CA of the root signed it (directly or through an
// intermediate the bundle carries); it is forged when it names a CA of the root (by key ID, or by name
// without a key ID) that did not sign it; else the CA is not in the root. Names alone never tell CAs
// apart: staging and production Fulcio share theirs.
func TestCAOf(t *testing.T) {
	p := pki{t}
	rootKey, otherRootKey, interKey, otherInterKey := p.key(), p.key(), p.key(), p.key()
	ca := p.cert("sigstore", true, rootKey, nil, nil)
	inter := p.cert("sigstore-intermediate", true, interKey, ca, rootKey)
	// Another instance with the same names (staging and production Fulcio).
	otherCA := p.cert("sigstore", true, otherRootKey, nil, nil)
	otherInter := p.cert("sigstore-intermediate", true, otherInterKey, otherCA, otherRootKey)

	leaf := p.cert("", false, p.key(), inter, interKey)
	fromOther := p.cert("", false, p.key(), otherInter, otherInterKey)
	// impostor is inter's name and key ID with another key: what it signs names inter.
	impostor := *inter
	impostor.PublicKey = &otherInterKey.PublicKey
	forgedByKeyID := p.cert("", false, p.key(), &impostor, otherInterKey)
	impostor.SubjectKeyId = nil
	forgedByName := p.cert("", false, p.key(), &impostor, otherInterKey)
	otherNoSKI := *otherInter
	otherNoSKI.SubjectKeyId = nil
	fromOtherNoAKI := p.cert("", false, p.key(), &otherNoSKI, otherInterKey)

	withInter := fulcioRoot(t, &root.FulcioCertificateAuthority{Root: ca, Intermediates: []*x509.Certificate{inter}})
	rootOnly := fulcioRoot(t, &root.FulcioCertificateAuthority{Root: ca})
	for name, tc := range map[string]struct {
		leaf    *x509.Certificate
		bundled []*x509.Certificate
		tr      root.TrustedMaterial
		want    issuerKind
	}{
		"issued by the root's intermediate":             {leaf, nil, withInter, issuerKnown},
		"through the bundle's intermediate":             {leaf, []*x509.Certificate{inter}, rootOnly, issuerKnown},
		"the bundle carries another intermediate":       {leaf, []*x509.Certificate{otherInter}, rootOnly, issuerUnknown},
		"another instance, same names, other key IDs":   {fromOther, nil, withInter, issuerUnknown},
		"another instance, with its intermediate":       {fromOther, []*x509.Certificate{otherInter}, withInter, issuerUnknown},
		"names the root's CA key ID, another key":       {forgedByKeyID, nil, withInter, issuerForged},
		"names the root's CA by name only, other key":   {forgedByName, nil, withInter, issuerForged},
		"no key ID, names cannot tell: taken as forged": {fromOtherNoAKI, nil, withInter, issuerForged},
		"a root without CAs":                            {leaf, nil, fulcioRoot(t), issuerUnknown},
		"a root without CAs, with bundle intermediate":  {leaf, []*x509.Certificate{inter}, fulcioRoot(t), issuerUnknown},
	} {
		t.Run(name, func(t *testing.T) {
			NewWithT(t).Expect(caOf(tc.leaf, tc.bundled, tc.tr)).To(Equal(tc.want))
		})
	}
}

// TestPartitionStamps: a timestamp is from a TSA the root does not list only when that is shown; one
// that cannot be read, or is not of this signature, is verified (and so fails), never a mismatch.
func TestPartitionStamps(t *testing.T) {
	a, err := sigstore.NewStack()
	if err != nil {
		t.Fatal(err)
	}
	b, err := sigstore.NewStack()
	if err != nil {
		t.Fatal(err)
	}
	sig := []byte("the signature")
	stamp, err := a.Timestamp(sig, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	rootOf := func(s *sigstore.Stack) root.TrustedMaterial {
		tr, err := s.TrustedRoot()
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	noTSA := fulcioRoot(t)
	for name, tc := range map[string]struct {
		stamp   []byte
		sig     []byte
		tr      root.TrustedMaterial
		known   int
		unknown []Anchor
	}{
		"its own TSA":             {stamp, sig, rootOf(a), 1, nil},
		"another stack's TSA":     {stamp, sig, rootOf(b), 0, []Anchor{{ID: `subject "CN=sigwatch test TSA,O=sigwatch.test"`}}},
		"a root without TSAs":     {stamp, sig, noTSA, 0, []Anchor{{ID: `subject "CN=sigwatch test TSA,O=sigwatch.test"`}}},
		"over another signature":  {stamp, []byte("another"), rootOf(b), 1, nil},
		"not a timestamp":         {[]byte("garbage"), sig, rootOf(b), 1, nil},
		"truncated":               {stamp[:len(stamp)/2], sig, rootOf(b), 1, nil},
		"the same stamp, 2 times": {stamp, sig, rootOf(b), 0, []Anchor{{ID: `subject "CN=sigwatch test TSA,O=sigwatch.test"`}}},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			stamps := [][]byte{tc.stamp}
			if name == "the same stamp, 2 times" {
				stamps = append(stamps, tc.stamp)
			}
			known, unknown := partitionStamps(stamps, tc.sig, tc.tr)
			g.Expect(known).To(HaveLen(tc.known))
			g.Expect(unknown).To(Equal(tc.unknown))
		})
	}
}

// TestPartitionStampsTellsStagingFromProduction: the real staging TSA's timestamp (without embedded
// certificates) names its signer by issuer and serial number; the production TSA has the same names but
// another leaf, so the production root does not list it, and the staging root does.
func TestPartitionStampsTellsStagingFromProduction(t *testing.T) {
	g := NewWithT(t)
	data, err := os.ReadFile("testdata/public-good-bundles/sigstore-python/a.dsse.staging-rekor-v2.txt.sigstore.json")
	g.Expect(err).NotTo(HaveOccurred())
	var bun bundle.Bundle
	g.Expect(bun.UnmarshalJSON(data)).To(Succeed())
	stamps, err := bun.Timestamps()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(stamps).To(HaveLen(1))
	sc, err := bun.SignatureContent()
	g.Expect(err).NotTo(HaveOccurred())

	signer, ok := tsaSigner(stamps[0])
	g.Expect(ok).To(BeTrue())
	g.Expect(signer.describe(nil)).To(Equal(`issuer "CN=sigstore-tsa-selfsigned,O=sigstore.dev"`))

	load := func(name string) root.TrustedMaterial {
		raw, err := os.ReadFile(filepath.Join("testdata/public-good-bundles/roots", name))
		g.Expect(err).NotTo(HaveOccurred())
		r, err := trust.FromJSON(raw, name)
		g.Expect(err).NotTo(HaveOccurred())
		return r.Material
	}
	known, unknown := partitionStamps(stamps, sc.Signature(), load("staging.sigstore-python.trusted_root.json"))
	g.Expect(known).To(HaveLen(1))
	g.Expect(unknown).To(BeEmpty())
	known, unknown = partitionStamps(stamps, sc.Signature(), load("prod.sigstore-python.trusted_root.json"))
	g.Expect(known).To(BeEmpty())
	g.Expect(unknown).To(HaveLen(1))
}

func TestTSASignerRejectsWhatItCannotRead(t *testing.T) {
	for _, raw := range [][]byte{nil, {}, []byte("garbage"), {0x30, 0x03, 0x02, 0x01, 0x00}} {
		_, ok := tsaSigner(raw)
		NewWithT(t).Expect(ok).To(BeFalse(), "%x", raw)
	}
}
