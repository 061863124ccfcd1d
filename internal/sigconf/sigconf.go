// Package sigconf is the one place that says how sigwatch sets up sigstore-go, for images
// (internal/verification) and for single bundles (internal/bundleverify, `sigwatch verify-bundle`) alike:
// which public keys are accepted and how they are named, how identity regular expressions are anchored,
// and which verifier options each kind of signature is checked with.
package sigconf

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/sigwatch/sigwatch/internal/trust"
)

// acceptedRSASizes are the RSA modulus sizes the verifier can use (sigstore's default algorithms).
var acceptedRSASizes = []int{2048, 3072, 4096}

// ParsePublicKey parses a PEM public key ("PUBLIC KEY", or "RSA PUBLIC KEY" in PKCS #1) of a kind the
// verifier can then use, and returns it with its key ID. Accepted: ECDSA P-256 and P-384, RSA of 2048,
// 3072 or 4096 bits, Ed25519. P-521 is refused: sigwatch has no end-to-end test that signatures made with
// it verify. A key is refused here, when the policy compiles, rather than failing every image later.
func ParsePublicKey(data []byte) (crypto.PublicKey, string, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, "", errors.New("no PEM block found")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		return nil, "", fmt.Errorf("PEM block is %q, want PUBLIC KEY", block.Type)
	}
	if err != nil {
		return nil, "", fmt.Errorf("parsing public key: %w", err)
	}
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, "", fmt.Errorf("ECDSA curve %s is not accepted (P-256 or P-384)", k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); !slices.Contains(acceptedRSASizes, bits) {
			return nil, "", fmt.Errorf("RSA key of %d bits is not accepted (2048, 3072 or 4096 bits)", bits)
		}
	case ed25519.PublicKey:
	default:
		return nil, "", fmt.Errorf("public key type %T is not accepted (ECDSA P-256 or P-384, RSA, Ed25519)", key)
	}
	// What is accepted must be what the verifier can load: checked here, not at the first image.
	if _, err := signature.LoadDefaultVerifier(key); err != nil {
		return nil, "", fmt.Errorf("the verifier cannot use this key: %w", err)
	}
	id, err := KeyID(key)
	if err != nil {
		return nil, "", err
	}
	return key, id, nil
}

// KeyID names a public key: the hex sha256 of its PKIX DER form.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encoding public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// KeyMaterial is a public key as trusted material, valid at any time: a key has no validity window of its
// own. The trust root still vouches for the logs and timestamp authorities (combine them with
// root.TrustedMaterialCollection).
func KeyMaterial(pub crypto.PublicKey) (root.TrustedMaterial, error) {
	sv, err := signature.LoadDefaultVerifier(pub)
	if err != nil {
		return nil, fmt.Errorf("loading key: %w", err)
	}
	key := root.NewExpiringKey(sv, time.Time{}, time.Time{})
	return root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) { return key, nil }), nil
}

// Anchor checks a regular expression and makes it match whole values only, as ^(?:RE)$: sigstore-go
// matches unanchored, so "yourorg/app" would otherwise accept "evil/yourorg/app-fork". "" stays "".
func Anchor(re string) (string, error) {
	if re == "" {
		return "", nil
	}
	if _, err := regexp.Compile(re); err != nil {
		return "", err
	}
	return `^(?:` + re + `)$`, nil
}

// Rules say what one signature is verified with.
type Rules struct {
	// Keyless: the signature is made with a Fulcio certificate (else with a public key).
	Keyless bool
	// TransparencyLog: one transparency log entry must verify.
	TransparencyLog bool
	// CarriesTime: a key-signed bundle carries something that certifies a time (an RFC 3161 timestamp,
	// or an inclusion promise of a log that is verified), and that time must verify. verify-bundle asks
	// for it, since it reports the signing time; images do not (a key is valid at any time, and a
	// timestamp from a TSA the policy's root does not list must not fail a good key signature).
	CarriesTime bool
}

// VerifierOptions are sigwatch's rules for sigstore-go:
//   - keyless: the certificate is checked at a time that a transparency log or a timestamp authority
//     certified, never at "now" (Fulcio certificates live minutes); SCTs are required exactly when the
//     trust root lists CT logs;
//   - key-signed: the key is valid at any time, so no time is needed; what the bundle carries to
//     certify one is verified all the same;
//   - a transparency log entry is verified when the rules ask for one.
func VerifierOptions(r Rules, tr *trust.Root) []verify.VerifierOption {
	var opts []verify.VerifierOption
	if r.TransparencyLog {
		opts = append(opts, verify.WithTransparencyLog(1))
	}
	switch {
	case r.Keyless:
		opts = append(opts, verify.WithObserverTimestamps(1))
		if tr.RequireSCT() {
			opts = append(opts, verify.WithSignedCertificateTimestamps(1))
		}
	case r.CarriesTime:
		opts = append(opts, verify.WithObserverTimestamps(1))
	default:
		opts = append(opts, verify.WithNoObserverTimestamps())
	}
	return opts
}

// NewVerifier returns a sigstore-go verifier for the rules: over the trust root for keyless signatures,
// over the trust root and the key for key-signed ones.
func NewVerifier(r Rules, tr *trust.Root, key crypto.PublicKey) (*verify.Verifier, error) {
	var material root.TrustedMaterial = tr.Material
	if !r.Keyless {
		km, err := KeyMaterial(key)
		if err != nil {
			return nil, err
		}
		material = root.TrustedMaterialCollection{tr.Material, km}
	}
	return verify.NewVerifier(material, VerifierOptions(r, tr)...)
}

// CarriesTime reports whether a bundle carries a certified time: an RFC 3161 timestamp, or an inclusion
// promise (a Rekor v1 signed entry timestamp) of a log entry that is verified (withLog).
func CarriesTime(b *bundle.Bundle, withLog bool) (bool, error) {
	stamps, err := b.Timestamps()
	if err != nil {
		return false, fmt.Errorf("reading RFC 3161 timestamps: %w", err)
	}
	if len(stamps) > 0 {
		return true, nil
	}
	if !withLog {
		return false, nil
	}
	entries, err := b.TlogEntries()
	if err != nil {
		return false, fmt.Errorf("reading transparency log entries: %w", err)
	}
	return slices.ContainsFunc(entries, (*tlog.Entry).HasInclusionPromise), nil
}
