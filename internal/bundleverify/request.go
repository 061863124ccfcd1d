package bundleverify

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/sigwatch/sigwatch/internal/sigconf"
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
	// Anchored here so that an error names the field and quotes the expression as given.
	anchored := map[string]string{}
	for _, re := range []struct{ field, value string }{
		{"CertificateIdentityRegexp", id.CertificateIdentityRegexp},
		{"CertificateOIDCIssuerRegexp", id.CertificateOIDCIssuerRegexp},
	} {
		a, err := sigconf.Anchor(re.value)
		if err != nil {
			return verify.CertificateIdentity{}, invalid("%s %q: %v", re.field, re.value, err)
		}
		anchored[re.field] = a
	}
	ci, err := verify.NewShortCertificateIdentity(id.CertificateOIDCIssuer, anchored["CertificateOIDCIssuerRegexp"],
		id.CertificateIdentity, anchored["CertificateIdentityRegexp"])
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

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidRequest, fmt.Sprintf(format, args...))
}

func notVerified(format string, args ...any) error {
	return fmt.Errorf("%w: %w", ErrNotVerified, fmt.Errorf(format, args...))
}
