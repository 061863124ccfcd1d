package bundleverify

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/digitorus/timestamp"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"

	"github.com/sigwatch/sigwatch/internal/sigconf"
	"github.com/sigwatch/sigwatch/internal/trust"
)

// ErrTrustRootMismatch wraps (with ErrNotVerified) the error of a bundle that fails only because the
// trust root lacks its transparency log, certificate authority or timestamp authority: errors.As finds the
// *Mismatch. The bundle is not verified: the bundle alone cannot tell a private Sigstore that was not
// configured from someone else's.
var ErrTrustRootMismatch = errors.New("trust root mismatch")

// ErrSignatureDoesNotVerify wraps a Diagnosis.Problem where the signature over the artifact does not
// check out with the bundle's own key (the certificate's, or the expected public key).
var ErrSignatureDoesNotVerify = errors.New("the signature over the artifact does not verify")

// Expectation is what a bundle was verified against: Diagnose checks it again, part by part.
type Expectation struct {
	// Rules are the rules the verifier was built with (sigconf.NewVerifier).
	Rules sigconf.Rules
	// Root is the trust root.
	Root *trust.Root
	// Key is the expected public key of a key-signed bundle; nil when keyless.
	Key crypto.PublicKey
	// Artifact is the signed artifact; or DigestAlgorithm and Digest its digest.
	Artifact        []byte
	DigestAlgorithm string
	Digest          []byte
	// Identity checks the signing certificate of a keyless bundle against the accepted signers (nil: not
	// checked).
	Identity func(*x509.Certificate) error
}

// Mismatch lists what a bundle names that its trust root does not.
type Mismatch struct {
	// Logs are the transparency logs of the bundle's entries, none of which the root lists.
	Logs []Anchor
	// CA is the certificate authority that issued the signing certificate, when the root lists none of
	// its certificates.
	CA *Anchor
	// TSAs are the timestamp authorities of the bundle's RFC 3161 timestamps, none of which the root lists.
	TSAs []Anchor
	// TrustRoot names the root (trust.Root.Source).
	TrustRoot string
}

// Anchor names a log or an authority as far as the bundle and the public-good root tell.
type Anchor struct {
	// ID is a log's key ID as trusted_root.json writes it (base64), or a certificate's subject or issuer.
	ID string
	// PublicGood is its URL when the public-good Sigstore lists it ("" otherwise).
	PublicGood string
}

// Diagnosis explains a bundle that sigstore-go rejected in terms of its trust root.
type Diagnosis struct {
	// Missing is what the bundle names and the trust root lacks, among what verification needed; nil
	// when the root lists it all (sigstore-go's error then stands as it is).
	Missing *Mismatch
	// Problem, when Missing is set, is what else is wrong with the bundle: a part the root vouches for
	// that does not verify (a log entry, a timestamp, the certificate chain), the signature over the
	// artifact (ErrSignatureDoesNotVerify), or the identity (*verify.ErrNoMatchingCertificateIdentity).
	// Nil: the missing parts alone explain the failure.
	Problem error
}

// Mismatch reports whether the trust root alone explains the failure.
func (d Diagnosis) Mismatch() bool { return d.Missing != nil && d.Problem == nil }

// Diagnose is called once sigstore-go has rejected b. It finds what b names and the root lacks — a log ID
// among none of the root's logs, a certificate whose issuer is none of the root's CAs (by authority key
// ID, or by name and signature), timestamps from none of the root's TSAs — and, when verification needed
// it, checks everything else it can: the entries of logs the root lists (an entry of a known log that
// does not verify is tampering, never a mismatch), the timestamps of known TSAs, the certificate chain to
// a known CA, the signature over the artifact with the bundle's own key, and the identity.
//
// A bundle can claim any log or CA: a Mismatch is never an acceptance, and it is only reported when
// nothing that can be checked is wrong, so that it cannot hide tampering with what can be.
func Diagnose(b *bundle.Bundle, e Expectation) Diagnosis {
	if b == nil || e.Root == nil || e.Root.Material == nil {
		return Diagnosis{}
	}
	var material root.TrustedMaterial = e.Root.Material
	if e.Key != nil {
		km, err := sigconf.KeyMaterial(e.Key)
		if err != nil {
			return Diagnosis{}
		}
		material = root.TrustedMaterialCollection{e.Root.Material, km}
	}
	vc, err := b.VerificationContent()
	if err != nil {
		return Diagnosis{}
	}
	sc, err := b.SignatureContent()
	if err != nil {
		return Diagnosis{}
	}
	entries, err := b.TlogEntries()
	if err != nil {
		return Diagnosis{}
	}
	stamps, err := b.Timestamps()
	if err != nil {
		return Diagnosis{}
	}
	leaf := vc.Certificate()
	if (e.Key != nil) != (leaf == nil) {
		// A certificate for a key authority, or a bare key for a keyless one: the wrong kind of
		// signature, whatever the trust root holds.
		return Diagnosis{}
	}
	m := &Mismatch{TrustRoot: e.Root.Source}

	// The parts verification needed, and which of them the root lacks.
	known, unknownLogs, promised := partitionEntries(entries, e.Root.Material)
	if e.Rules.TransparencyLog && len(entries) > 0 && len(known) == 0 {
		m.Logs = unknownLogs
	}
	forged := false
	if leaf != nil {
		switch issuer := caOf(leaf, vc.Intermediates(), e.Root.Material); issuer {
		case issuerUnknown:
			m.CA = &Anchor{ID: "issuer " + quoted(leaf.Issuer.String()), PublicGood: publicGoodCA(leaf)}
		case issuerForged:
			forged = true
		}
	}
	// Timestamps count only where verification needs a time (sigstore-go ignores them otherwise).
	timeNeeded := e.Rules.Keyless || e.Rules.CarriesTime
	var knownStamps [][]byte
	if timeNeeded {
		if len(stamps) > maxStamps {
			return Diagnosis{}
		}
		knownStamps, m.TSAs = partitionStamps(stamps, sc.Signature(), e.Root.Material)
	}
	if m.empty() {
		return Diagnosis{}
	}

	// The signature over the artifact, with the bundle's own key, comes first: it is what a changed
	// signature breaks, whatever else it breaks too.
	if err := verifySignature(sc, vc, material, e); err != nil {
		return m.with(err)
	}
	// Everything the root vouches for must verify.
	var times []time.Time
	if e.Rules.TransparencyLog {
		// Threshold 0: the structural checks and every entry of a known log, none required.
		ts, err := verify.VerifyTlogEntry(b, material, 0, true)
		if err != nil {
			return m.with(fmt.Errorf("transparency log entry: %w", err))
		}
		for _, entry := range known {
			if entry.HasInclusionPromise() {
				if err := tlog.VerifySET(entry, material.RekorLogs()); err != nil {
					// sigstore-go skips such an entry; a known log's entry that does not verify is tampering.
					return m.with(fmt.Errorf("the signed entry timestamp of log %s does not verify: %w", logKeyID(entry), err))
				}
			}
		}
		for _, t := range ts {
			times = append(times, t.Time)
		}
	}
	for _, stamp := range knownStamps {
		t, err := verifyStamp(stamp, sc.Signature(), material)
		if err != nil {
			return m.with(fmt.Errorf("an RFC 3161 timestamp that does not show another authority does not verify against the trust root's: %w", err))
		}
		times = append(times, t)
	}
	switch {
	case len(times) > 0:
		m.TSAs = nil // a time was certified without them: the missing TSAs were not needed
	case timeNeeded && len(m.TSAs) == 0 && (len(m.Logs) == 0 || !promised):
		// Nothing certified a time, and no missing log (with a signed entry timestamp) or TSA would
		// have: not the root's doing.
		return Diagnosis{}
	}
	if m.empty() {
		return Diagnosis{} // what the root lacks was not needed
	}
	if forged {
		return m.with(errors.New("the signing certificate names a certificate authority of the trust root, whose signature it does not carry"))
	}
	if leaf != nil && m.CA == nil {
		if err := verifyChain(leaf, times, material, e.Root.RequireSCT()); err != nil {
			return m.with(err)
		}
	}
	if len(m.Logs) > 0 {
		if err := consistent(entries, sc, vc, material); err != nil {
			return m.with(err)
		}
	}
	if leaf != nil && e.Identity != nil {
		if err := e.Identity(leaf); err != nil {
			return m.with(fmt.Errorf("certificate identity: %w", err))
		}
	}
	return Diagnosis{Missing: m}
}

func (m *Mismatch) with(problem error) Diagnosis { return Diagnosis{Missing: m, Problem: problem} }

func (m *Mismatch) empty() bool { return len(m.Logs) == 0 && m.CA == nil && len(m.TSAs) == 0 }

// Error says what is missing, for example `its transparency log (keyId "...") is not in the trust root
// public-good (embedded snapshot)`.
func (m *Mismatch) Error() string {
	var parts []string
	if len(m.Logs) > 0 {
		parts = append(parts, plural(len(m.Logs), "transparency log")+" ("+anchors(m.Logs)+")")
	}
	if m.CA != nil {
		parts = append(parts, "certificate authority ("+anchors([]Anchor{*m.CA})+")")
	}
	if len(m.TSAs) > 0 {
		parts = append(parts, plural(len(m.TSAs), "timestamp authority")+" ("+anchors(m.TSAs)+")")
	}
	verb := "is"
	if len(parts) > 1 || len(m.Logs) > 1 || len(m.TSAs) > 1 {
		verb = "are"
	}
	what := strings.Join(parts, " and ")
	if len(parts) == 3 {
		what = parts[0] + ", " + parts[1] + " and " + parts[2]
	}
	return fmt.Sprintf("its %s %s not in the trust root %s", what, verb, m.TrustRoot)
}

func plural(n int, s string) string {
	switch {
	case n == 1:
		return s
	case strings.HasSuffix(s, "y"):
		return strings.TrimSuffix(s, "y") + "ies"
	default:
		return s + "s"
	}
}

func anchors(as []Anchor) string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		s := a.ID
		if a.PublicGood != "" {
			s += ", which the public-good Sigstore lists as " + a.PublicGood
		}
		out = append(out, s)
	}
	return strings.Join(out, "; ")
}

// maxNamed bounds the logs and authorities a message names: a bundle has at most a few.
const maxNamed = 3

// partitionEntries splits the entries into those of logs the root lists and the distinct logs it does
// not; promised tells whether an entry of a log it does not list has a signed entry timestamp (which would
// have certified a time).
func partitionEntries(entries []*tlog.Entry, tr root.TrustedMaterial) (known []*tlog.Entry, unknown []Anchor, promised bool) {
	logs := tr.RekorLogs()
	seen := map[string]bool{}
	for _, entry := range entries {
		id := hex.EncodeToString([]byte(entry.LogKeyID()))
		if _, ok := logs[id]; ok {
			known = append(known, entry)
			continue
		}
		promised = promised || entry.HasInclusionPromise()
		if seen[id] || len(unknown) == maxNamed {
			continue
		}
		seen[id] = true
		unknown = append(unknown, Anchor{ID: "keyId " + strconv.Quote(logKeyID(entry)), PublicGood: publicGoodLog(id)})
	}
	return known, unknown, promised
}

// logKeyID is a log's key ID as trusted_root.json writes it (base64 of the raw ID).
func logKeyID(entry *tlog.Entry) string {
	return base64.StdEncoding.EncodeToString([]byte(entry.LogKeyID()))
}

type issuerKind int

const (
	issuerKnown   issuerKind = iota // a CA of the root signed the certificate (or its bundled intermediate)
	issuerUnknown                   // no CA of the root is, or claims to be, its issuer
	issuerForged                    // it names a CA of the root (key ID or name) that did not sign it
)

// caOf tells whether a CA of the root issued the leaf: signed it, directly or through one intermediate
// the bundle carries. A certificate that names a root CA's key ID, or (without a key ID) its subject, but
// is not signed by it, is forged: the root knows the CA it claims. Staging and production Fulcio share
// their names and differ in their keys, so the key ID decides when there is one.
func caOf(leaf *x509.Certificate, bundled []*x509.Certificate, tr root.TrustedMaterial) issuerKind {
	cas := caCertificates(tr)
	if len(bundled) > maxNamed*2 {
		bundled = bundled[:maxNamed*2]
	}
	claimed := false
	for _, ca := range cas {
		if leaf.CheckSignatureFrom(ca) == nil {
			return issuerKnown
		}
		claimed = claimed || names(leaf, ca)
	}
	for _, inter := range bundled {
		if leaf.CheckSignatureFrom(inter) != nil {
			continue
		}
		for _, ca := range cas {
			if inter.Equal(ca) || inter.CheckSignatureFrom(ca) == nil {
				return issuerKnown
			}
			claimed = claimed || names(inter, ca)
		}
	}
	if claimed {
		return issuerForged
	}
	return issuerUnknown
}

// names reports whether cert names ca as its issuer: by authority key ID when it has one, else by name.
func names(cert, ca *x509.Certificate) bool {
	if len(cert.AuthorityKeyId) > 0 {
		return len(ca.SubjectKeyId) > 0 && bytes.Equal(cert.AuthorityKeyId, ca.SubjectKeyId)
	}
	return bytes.Equal(cert.RawIssuer, ca.RawSubject)
}

func caCertificates(tr root.TrustedMaterial) []*x509.Certificate {
	var out []*x509.Certificate
	for _, ca := range tr.FulcioCertificateAuthorities() {
		if f, ok := ca.(*root.FulcioCertificateAuthority); ok {
			out = append(out, f.Intermediates...)
			if f.Root != nil {
				out = append(out, f.Root)
			}
		}
	}
	return out
}

// maxStamps bounds the timestamps examined; sigstore-go refuses more.
const maxStamps = 32

// partitionStamps splits the RFC 3161 timestamps into those a TSA of the root may have signed (to be
// verified) and the distinct TSAs the root does not list. A timestamp is from a TSA the root does not list
// when the root lists none, or when its imprint is the signature's and its signer (named by issuer and
// serial number, or key ID, in the CMS signer info) is no certificate of the root's TSAs and its issuer
// none of their CAs, and no certificate it embeds is, or is signed by, one of them. A timestamp whose
// signer cannot be read is verified: it is never counted as a mismatch.
func partitionStamps(stamps [][]byte, signature []byte, tr root.TrustedMaterial) ([][]byte, []Anchor) {
	tsas := sigstoreTSAs(tr)
	tsaCerts := tsaCertificates(tr)
	var known [][]byte
	var unknown []Anchor
	seen := map[string]bool{}
	for _, raw := range stamps {
		ts, err := timestamp.ParseResponse(raw)
		if err != nil || !imprintMatches(ts, signature) {
			known = append(known, raw) // not a timestamp of this signature: verified, and fails
			continue
		}
		signer, identified := tsaSigner(raw)
		if len(tr.TimestampingAuthorities()) > 0 && (!identified || len(tsas) < len(tr.TimestampingAuthorities()) ||
			signer.ofAny(tsas) || relatesTo(ts.Certificates, tsaCerts)) {
			known = append(known, raw)
			continue
		}
		a := Anchor{ID: "signer not named"}
		if identified {
			a = Anchor{ID: signer.describe(ts.Certificates), PublicGood: publicGoodTSA(signer, ts.Certificates)}
		}
		unknown = addAnchor(unknown, seen, a)
	}
	return known, unknown
}

// signerID identifies the signer of a CMS signed data: by issuer and serial number, or by key ID.
type signerID struct {
	issuer []byte // DER of the issuer's name
	serial *big.Int
	keyID  []byte
}

// ofAny reports whether the signer is one of the TSAs: its leaf certificate (by issuer and serial number,
// or key ID) when the root gives one, as sigstore-go then requires; else a certificate its CAs issued (by
// issuer name). Names alone do not tell TSAs apart when the root has the leaf: staging and production
// Sigstore's TSAs have the same names.
func (s signerID) ofAny(tsas []*root.SigstoreTimestampingAuthority) bool {
	for _, tsa := range tsas {
		if tsa.Leaf != nil {
			if s.is(tsa.Leaf) {
				return true
			}
			continue
		}
		for _, ca := range append(append([]*x509.Certificate{}, tsa.Intermediates...), tsa.Root) {
			if ca != nil && (s.is(ca) || s.issuer != nil && bytes.Equal(s.issuer, ca.RawSubject)) {
				return true
			}
		}
	}
	return false
}

// is reports whether the signer is the certificate c.
func (s signerID) is(c *x509.Certificate) bool {
	if s.keyID != nil {
		return len(c.SubjectKeyId) > 0 && bytes.Equal(s.keyID, c.SubjectKeyId)
	}
	return bytes.Equal(s.issuer, c.RawIssuer) && s.serial.Cmp(c.SerialNumber) == 0
}

func (s signerID) describe(embedded []*x509.Certificate) string {
	for _, c := range embedded {
		if s.is(c) {
			return "subject " + quoted(c.Subject.String())
		}
	}
	if s.issuer != nil {
		var rdn pkix.RDNSequence
		if rest, err := asn1.Unmarshal(s.issuer, &rdn); err == nil && len(rest) == 0 {
			var name pkix.Name
			name.FillFromRDNSequence(&rdn)
			return "issuer " + quoted(name.String())
		}
	}
	return "key ID " + hex.EncodeToString(s.keyID)
}

// tsaSigner reads the signer of an RFC 3161 response (TimeStampResp, RFC 3161 §2.4.2) from its CMS
// SignedData (RFC 5652 §5): exactly one signer info, identified by issuer and serial number or by
// subject key ID. Only read, not verified: what it names decides whether the timestamp is verified.
func tsaSigner(resp []byte) (signerID, bool) {
	var r struct {
		Status asn1.RawValue
		Token  asn1.RawValue `asn1:"optional"`
	}
	if rest, err := asn1.Unmarshal(resp, &r); err != nil || len(rest) > 0 || len(r.Token.FullBytes) == 0 {
		return signerID{}, false
	}
	var ci struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue `asn1:"explicit,tag:0"`
	}
	if _, err := asn1.Unmarshal(r.Token.FullBytes, &ci); err != nil {
		return signerID{}, false
	}
	var sd struct {
		Version          int
		DigestAlgorithms asn1.RawValue
		EncapContentInfo asn1.RawValue
		Certificates     asn1.RawValue `asn1:"optional,tag:0"`
		CRLs             asn1.RawValue `asn1:"optional,tag:1"`
		SignerInfos      asn1.RawValue
	}
	if _, err := asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil {
		return signerID{}, false
	}
	var si asn1.RawValue
	if rest, err := asn1.Unmarshal(sd.SignerInfos.Bytes, &si); err != nil || len(rest) > 0 {
		return signerID{}, false // none, or more than one
	}
	var version int
	rest, err := asn1.Unmarshal(si.Bytes, &version)
	if err != nil {
		return signerID{}, false
	}
	var sid asn1.RawValue
	if _, err := asn1.Unmarshal(rest, &sid); err != nil {
		return signerID{}, false
	}
	if sid.Class == asn1.ClassContextSpecific && sid.Tag == 0 {
		if len(sid.Bytes) == 0 {
			return signerID{}, false
		}
		return signerID{keyID: sid.Bytes}, true
	}
	var ias struct {
		Issuer asn1.RawValue
		Serial *big.Int
	}
	if rest, err := asn1.Unmarshal(sid.FullBytes, &ias); err != nil || len(rest) > 0 || ias.Serial == nil {
		return signerID{}, false
	}
	return signerID{issuer: ias.Issuer.FullBytes, serial: ias.Serial}, true
}

func addAnchor(as []Anchor, seen map[string]bool, a Anchor) []Anchor {
	if seen[a.ID] || len(as) == maxNamed {
		return as
	}
	seen[a.ID] = true
	return append(as, a)
}

func imprintMatches(ts *timestamp.Timestamp, signature []byte) bool {
	if !ts.HashAlgorithm.Available() {
		return false
	}
	h := ts.HashAlgorithm.New()
	h.Write(signature)
	return bytes.Equal(h.Sum(nil), ts.HashedMessage)
}

func relatesTo(certs, anchors []*x509.Certificate) bool {
	if len(certs) > maxNamed*2 {
		certs = certs[:maxNamed*2]
	}
	for _, c := range certs {
		for _, a := range anchors {
			if c.Equal(a) || len(c.AuthorityKeyId) > 0 && names(c, a) || c.CheckSignatureFrom(a) == nil {
				return true
			}
		}
	}
	return false
}

func sigstoreTSAs(tr root.TrustedMaterial) []*root.SigstoreTimestampingAuthority {
	var out []*root.SigstoreTimestampingAuthority
	for _, tsa := range tr.TimestampingAuthorities() {
		if s, ok := tsa.(*root.SigstoreTimestampingAuthority); ok {
			out = append(out, s)
		}
	}
	return out
}

func tsaCertificates(tr root.TrustedMaterial) []*x509.Certificate {
	var out []*x509.Certificate
	for _, s := range sigstoreTSAs(tr) {
		out = append(out, authorityCertificates(s)...)
	}
	return out
}

func authorityCertificates(s *root.SigstoreTimestampingAuthority) []*x509.Certificate {
	var out []*x509.Certificate
	for _, c := range append(append([]*x509.Certificate{s.Leaf}, s.Intermediates...), s.Root) {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}

// verifyStamp verifies one timestamp against the root's TSAs, as sigstore-go does.
func verifyStamp(stamp, signature []byte, tr root.TrustedMaterial) (time.Time, error) {
	if len(tr.TimestampingAuthorities()) == 0 {
		return time.Time{}, errors.New("the trust root lists no timestamp authority")
	}
	var errs []error
	for _, tsa := range tr.TimestampingAuthorities() {
		ts, err := tsa.Verify(stamp, signature)
		if err == nil {
			return ts.Time, nil
		}
		errs = append(errs, err)
	}
	return time.Time{}, errors.Join(errs...)
}

// consistent checks that the Rekor v1 entries record the bundle's own signature and key. An entry of a log
// the root does not list proves nothing, but one that records another signature is a bundle put together
// from parts (CVE-2022-36056), not a signature from an unlisted Sigstore.
func consistent(entries []*tlog.Entry, sc verify.SignatureContent, vc verify.VerificationContent, tr root.TrustedMaterial) error {
	for _, entry := range entries {
		if entry.IsRekorV2() {
			continue // its entry hash commits to the signature and key: only a listed log can check it
		}
		if !bytes.Equal(entry.Signature(), sc.Signature()) {
			return fmt.Errorf("the entry of transparency log %s records another signature than the bundle's", logKeyID(entry))
		}
		if !vc.CompareKey(entry.PublicKey(), tr) {
			return fmt.Errorf("the entry of transparency log %s records another certificate or key than the bundle's", logKeyID(entry))
		}
	}
	return nil
}

// oidSAN is the subject alternative name extension, which Go cannot check when it holds an OtherName.
var oidSAN = asn1.ObjectIdentifier{2, 5, 29, 17}

// verifyChain verifies the certificate chain to a CA of the root at every certified time (and its SCT
// when the root lists CT logs), as sigstore-go does. Without a certified time the chain was checked by
// signature only (caOf): the time is what a missing log or TSA would have certified.
func verifyChain(leaf *x509.Certificate, times []time.Time, tr root.TrustedMaterial, requireSCT bool) error {
	c := *leaf
	c.UnhandledCriticalExtensions = nil
	for _, oid := range leaf.UnhandledCriticalExtensions {
		if !oid.Equal(oidSAN) {
			c.UnhandledCriticalExtensions = append(c.UnhandledCriticalExtensions, oid)
		}
	}
	for _, t := range times {
		chains, err := verify.VerifyLeafCertificate(t, &c, tr)
		if err != nil {
			return fmt.Errorf("the certificate does not verify at %s against the trust root's certificate authority: %w", t.UTC().Format(time.RFC3339), err)
		}
		if requireSCT {
			if err := verify.VerifySignedCertificateTimestamp(chains, 1, tr); err != nil {
				return fmt.Errorf("signed certificate timestamp: %w", err)
			}
		}
	}
	return nil
}

// verifySignature verifies the signature over the artifact with the bundle's key: the certificate's, or
// the expected key.
func verifySignature(sc verify.SignatureContent, vc verify.VerificationContent, tr root.TrustedMaterial, e Expectation) error {
	if leaf := vc.Certificate(); leaf != nil {
		// sigstore-go's exported checks lack the compatibility verifier its Verify uses for certificates:
		// the certificate's key goes in as a key instead.
		v, err := leafVerifier(leaf, sc.EnvelopeContent() != nil)
		if err != nil {
			return fmt.Errorf("%w: loading the certificate's key: %w", ErrSignatureDoesNotVerify, err)
		}
		key := root.NewExpiringKey(v, time.Time{}, time.Time{})
		tr = root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) { return key, nil })
		vc = leafAsKey{vc}
	}
	var err error
	switch {
	case e.Artifact != nil:
		err = verify.VerifySignatureWithArtifacts(sc, vc, tr, []io.Reader{bytes.NewReader(e.Artifact)})
	case e.DigestAlgorithm != "":
		err = verify.VerifySignatureWithArtifactDigests(sc, vc, tr, []verify.ArtifactDigest{{Algorithm: e.DigestAlgorithm, Digest: e.Digest}})
	default:
		err = errors.New("no artifact to verify the signature over")
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSignatureDoesNotVerify, err)
	}
	return nil
}

// publicGood is the embedded public-good root, to name what a private root lacks.
var publicGood = sync.OnceValue(func() *root.TrustedRoot {
	r, err := trust.Embedded()
	if err != nil {
		return nil
	}
	return r.Material
})

func publicGoodLog(hexID string) string {
	pg := publicGood()
	if pg == nil {
		return ""
	}
	if l, ok := pg.RekorLogs()[hexID]; ok {
		return l.BaseURL
	}
	return ""
}

func publicGoodCA(leaf *x509.Certificate) string {
	pg := publicGood()
	if pg == nil {
		return ""
	}
	for _, ca := range pg.FulcioCertificateAuthorities() {
		f, ok := ca.(*root.FulcioCertificateAuthority)
		if !ok {
			continue
		}
		for _, c := range append(append([]*x509.Certificate{}, f.Intermediates...), f.Root) {
			if c != nil && len(leaf.AuthorityKeyId) > 0 && bytes.Equal(leaf.AuthorityKeyId, c.SubjectKeyId) {
				return f.URI
			}
		}
	}
	return ""
}

func publicGoodTSA(signer signerID, embedded []*x509.Certificate) string {
	pg := publicGood()
	if pg == nil {
		return ""
	}
	for _, tsa := range pg.TimestampingAuthorities() {
		s, ok := tsa.(*root.SigstoreTimestampingAuthority)
		if !ok {
			continue
		}
		if signer.ofAny([]*root.SigstoreTimestampingAuthority{s}) || relatesTo(embedded, authorityCertificates(s)) {
			return s.URI
		}
	}
	return ""
}

// quoted quotes a name the bundle gives (attacker-controlled), cut to a readable length.
func quoted(s string) string {
	const max = 120
	if r := []rune(s); len(r) > max {
		s = string(r[:max]) + "…"
	}
	return strconv.Quote(s)
}

// leafAsKey presents a certificate's verification content as its key.
type leafAsKey struct{ verify.VerificationContent }

func (leafAsKey) Certificate() *x509.Certificate      { return nil }
func (leafAsKey) PublicKey() verify.PublicKeyProvider { return noHint{} }

type noHint struct{}

func (noHint) Hint() string { return "" }

// leafVerifier is the verifier sigstore-go's Verify uses for a certificate's key: the key's default
// algorithm, and for ECDSA P-384 and P-521 also SHA-256, which older clients signed with.
func leafVerifier(leaf *x509.Certificate, dsse bool) (signature.Verifier, error) {
	var opts []signature.LoadOption
	if !dsse {
		opts = append(opts, options.WithED25519ph())
	}
	def, err := signature.LoadDefaultVerifier(leaf.PublicKey, opts...)
	if err != nil {
		return nil, err
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return def, nil
	}
	var details protocommon.PublicKeyDetails
	switch pub.Curve {
	case elliptic.P384():
		details = protocommon.PublicKeyDetails_PKIX_ECDSA_P384_SHA_256 //nolint:staticcheck // what older clients signed with
	case elliptic.P521():
		details = protocommon.PublicKeyDetails_PKIX_ECDSA_P521_SHA_256 //nolint:staticcheck // what older clients signed with
	default:
		return def, nil
	}
	ad, err := signature.GetAlgorithmDetails(details)
	if err != nil {
		return nil, err
	}
	compat, err := signature.LoadVerifierFromAlgorithmDetails(pub, ad, opts...)
	if err != nil {
		return nil, err
	}
	return anyOf{def, compat}, nil
}

// anyOf verifies with the first verifier, then the others.
type anyOf []signature.Verifier

func (v anyOf) PublicKey(opts ...signature.PublicKeyOption) (crypto.PublicKey, error) {
	return v[0].PublicKey(opts...)
}

func (v anyOf) VerifySignature(sig, message io.Reader, opts ...signature.VerifyOption) error {
	sigBytes, err := io.ReadAll(sig)
	if err != nil {
		return err
	}
	var msg []byte
	if message != nil {
		if msg, err = io.ReadAll(message); err != nil {
			return err
		}
	}
	for _, one := range v {
		if err = one.VerifySignature(bytes.NewReader(sigBytes), bytes.NewReader(msg), opts...); err == nil {
			return nil
		}
	}
	return err
}
