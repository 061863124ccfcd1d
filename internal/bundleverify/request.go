package bundleverify

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// Identity is the signer a keyless bundle must come from: exactly one of CertificateIdentity and
// CertificateIdentityRegexp, and exactly one of CertificateOIDCIssuer and CertificateOIDCIssuerRegexp.
// Regular expressions must match the whole value: they are anchored as ^(?:RE)$.
type Identity struct {
	// CertificateIdentity is the exact Subject Alternative Name of the signing certificate.
	CertificateIdentity string
	// CertificateIdentityRegexp is a Go regular expression the whole SAN must match.
	CertificateIdentityRegexp string
	// CertificateOIDCIssuer is the exact OIDC issuer recorded in the certificate.
	CertificateOIDCIssuer string
	// CertificateOIDCIssuerRegexp is a Go regular expression the whole OIDC issuer must match.
	CertificateOIDCIssuerRegexp string
}

func (id Identity) empty() bool { return id == Identity{} }

// anchor makes a regular expression match whole values only: sigstore-go matches unanchored.
func anchor(re string) string {
	if re == "" {
		return ""
	}
	return "^(?:" + re + ")$"
}

// certificateIdentity checks the exactly-one rules and compiles the anchored matchers.
func (id Identity) certificateIdentity() (verify.CertificateIdentity, error) {
	switch {
	case id.CertificateIdentity != "" && id.CertificateIdentityRegexp != "":
		return verify.CertificateIdentity{}, invalid("CertificateIdentity and CertificateIdentityRegexp are mutually exclusive")
	case id.CertificateIdentity == "" && id.CertificateIdentityRegexp == "":
		return verify.CertificateIdentity{}, invalid("one of CertificateIdentity and CertificateIdentityRegexp is required")
	case id.CertificateOIDCIssuer != "" && id.CertificateOIDCIssuerRegexp != "":
		return verify.CertificateIdentity{}, invalid("CertificateOIDCIssuer and CertificateOIDCIssuerRegexp are mutually exclusive")
	case id.CertificateOIDCIssuer == "" && id.CertificateOIDCIssuerRegexp == "":
		return verify.CertificateIdentity{}, invalid("one of CertificateOIDCIssuer and CertificateOIDCIssuerRegexp is required")
	}
	// Compile here first so that the error names the field and quotes the expression as given.
	for _, re := range []struct{ field, value string }{
		{"CertificateIdentityRegexp", id.CertificateIdentityRegexp},
		{"CertificateOIDCIssuerRegexp", id.CertificateOIDCIssuerRegexp},
	} {
		if _, err := regexp.Compile(anchor(re.value)); err != nil {
			return verify.CertificateIdentity{}, invalid("%s %q: %v", re.field, re.value, err)
		}
	}
	ci, err := verify.NewShortCertificateIdentity(id.CertificateOIDCIssuer, anchor(id.CertificateOIDCIssuerRegexp),
		id.CertificateIdentity, anchor(id.CertificateIdentityRegexp))
	if err != nil {
		return verify.CertificateIdentity{}, invalid("certificate identity: %v", err)
	}
	return ci, nil
}

// digestSizes are the artifact digest algorithms accepted, with their length in bytes.
var digestSizes = map[string]int{"sha256": sha256.Size, "sha512": 64}

// ParseDigest parses "sha256:HEX" or "sha512:HEX" into the algorithm name and the raw digest.
func ParseDigest(s string) (string, []byte, error) {
	alg, hexDigest, ok := strings.Cut(s, ":")
	size, known := digestSizes[alg]
	if !ok || !known {
		return "", nil, invalid("artifact digest %q: want sha256:HEX or sha512:HEX", s)
	}
	raw, err := hex.DecodeString(hexDigest)
	if err != nil || len(raw) != size {
		return "", nil, invalid("artifact digest %q: want %d hex characters after %q", s, 2*size, alg+":")
	}
	return alg, raw, nil
}

// IsDigest reports whether s has the form of a digest ParseDigest accepts ("sha256:" or "sha512:"
// prefix); it may still be malformed.
func IsDigest(s string) bool {
	alg, _, ok := strings.Cut(s, ":")
	_, known := digestSizes[alg]
	return ok && known
}

// artifactPolicy turns the request's artifact (bytes or digest) into sigstore-go's artifact option.
func (r *Request) artifactPolicy() (verify.ArtifactPolicyOption, error) {
	switch {
	case r.Artifact != nil && r.ArtifactDigest != "":
		return nil, invalid("Artifact and ArtifactDigest are mutually exclusive")
	case r.Artifact != nil:
		return verify.WithArtifact(bytes.NewReader(r.Artifact)), nil
	case r.ArtifactDigest != "":
		alg, raw, err := ParseDigest(r.ArtifactDigest)
		if err != nil {
			return nil, err
		}
		return verify.WithArtifactDigest(alg, raw), nil
	default:
		return nil, invalid("one of Artifact and ArtifactDigest is required")
	}
}

// publicKey is a parsed PublicKey: the trusted material that vouches for it and its ID.
type publicKey struct {
	material root.TrustedMaterial
	id       string
}

// parsePublicKey loads a PEM public key as trusted material valid at any time: a key has no validity
// window of its own.
func parsePublicKey(pemData []byte) (*publicKey, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemData)
	if err != nil {
		return nil, invalid("PublicKey: %v", err)
	}
	sv, err := signature.LoadDefaultVerifier(pub)
	if err != nil {
		return nil, invalid("PublicKey: %v", err)
	}
	id, err := keyID(pub)
	if err != nil {
		return nil, invalid("PublicKey: %v", err)
	}
	key := root.NewExpiringKey(sv, time.Time{}, time.Time{})
	material := root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) { return key, nil })
	return &publicKey{material: material, id: id}, nil
}

// keyID is the hex sha256 of the key's PKIX DER form, as sigwatch names keys elsewhere.
func keyID(pub crypto.PublicKey) (string, error) {
	der, err := cryptoutils.MarshalPublicKeyToDER(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidRequest, fmt.Sprintf(format, args...))
}

func notVerified(format string, args ...any) error {
	return fmt.Errorf("%w: %w", ErrNotVerified, fmt.Errorf(format, args...))
}
