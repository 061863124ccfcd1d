// Package sigstore is a local Sigstore for tests and the demo: a Fulcio-like certificate authority that
// issues keyless certificates with the claims real Fulcio embeds (GitHub Actions workflow identities
// included), a Rekor v1 transparency log that hands out signed entry timestamps (SETs) and inclusion
// proofs for any integrated time, and an RFC 3161 timestamp authority that stamps any time. Its
// TrustedRootJSON is a Sigstore trusted_root.json that sigstore-go accepts.
//
// A Writer pushes signatures and attestations of images into an OCI registry exactly as cosign v3.1.3
// lays them out, in both of cosign's formats (Sigstore bundles as OCI 1.1 referrers; legacy
// sha256-<hex>.sig and .att tags), signed by a KeySigner or a KeylessSigner, with hooks that tamper
// with what is stored so that tests can prove a verifier rejects it.
//
// Nothing here talks to the network except the registry it is given. Every certificate and key is valid
// from 2020-01-01 to 2040-01-01, so signatures can be dated anywhere in that range.
package sigstore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/digitorus/timestamp"
	"github.com/sigstore/sigstore-go/pkg/root"
)

// Fixed names and validity of the stack.
const (
	// FulcioURL names the certificate authority in the trusted root (never contacted).
	FulcioURL = "https://fulcio.sigwatch.test"
	// RekorURL is the transparency log's baseUrl in the trusted root (never contacted). Its host is the
	// origin of the log's checkpoints.
	RekorURL = "https://rekor.sigwatch.test"
	// TSAURL names the timestamp authority in the trusted root (never contacted).
	TSAURL = "https://tsa.sigwatch.test"

	// rekorHost is RekorURL's host, the origin of Rekor v1 checkpoints ("<host> - <tree ID>").
	rekorHost = "rekor.sigwatch.test"
	// rekorTreeID is the Rekor v1 tree (shard) of every entry.
	rekorTreeID = 1193050959916656506
)

var (
	// ValidFrom is when every certificate and key of a Stack becomes valid, and the start of the
	// validity of the CA, the log and the TSA in the trusted root.
	ValidFrom = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	// ValidUntil is when every certificate of a Stack expires.
	ValidUntil = time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)

	// oidTimeStampingEKU is id-kp-timeStamping, which RFC 3161 requires as the only, critical, EKU.
	oidTimeStampingEKU = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8}
	// oidExtKeyUsage is the extended key usage extension.
	oidExtKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 37}
	// oidTSAPolicy is the timestamp policy of Sigstore's timestamp authority.
	oidTSAPolicy = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 2}
)

// Stack is a certificate authority, a Rekor v1 transparency log and a timestamp authority, in memory. It
// is safe for concurrent use.
type Stack struct {
	// Root and Intermediate are the Fulcio-like CA chain that issues keyless certificates.
	Root, Intermediate *x509.Certificate
	// TSARoot and TSALeaf are the timestamp authority's chain; TSALeaf signs the timestamps.
	TSARoot, TSALeaf *x509.Certificate

	intermediateKey *ecdsa.PrivateKey
	tsaKey          *ecdsa.PrivateKey
	logKey          *ecdsa.PrivateKey
	logID           []byte // sha256 of the PKIX DER of the log's public key
	nextIndex       atomic.Int64
}

// NewStack creates the keys and certificates of a new stack: an ECDSA P-256 root CA and an intermediate
// with the CodeSigning EKU (as Fulcio's), a log key, and a timestamp authority root and leaf (the leaf with
// the sole, critical, TimeStamping EKU), all valid from ValidFrom to ValidUntil.
func NewStack() (*Stack, error) {
	s := &Stack{}
	s.nextIndex.Store(1000)

	rootKey, err := newKey()
	if err != nil {
		return nil, err
	}
	s.Root, err = createCertificate(&x509.Certificate{
		Subject:               pkix.Name{CommonName: "sigwatch test root", Organization: []string{"sigwatch.test"}},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil, rootKey, rootKey)
	if err != nil {
		return nil, fmt.Errorf("creating the root CA: %w", err)
	}

	if s.intermediateKey, err = newKey(); err != nil {
		return nil, err
	}
	s.Intermediate, err = createCertificate(&x509.Certificate{
		Subject:               pkix.Name{CommonName: "sigwatch test intermediate", Organization: []string{"sigwatch.test"}},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}, s.Root, s.intermediateKey, rootKey)
	if err != nil {
		return nil, fmt.Errorf("creating the intermediate CA: %w", err)
	}

	tsaRootKey, err := newKey()
	if err != nil {
		return nil, err
	}
	s.TSARoot, err = createCertificate(&x509.Certificate{
		Subject:               pkix.Name{CommonName: "sigwatch test TSA root", Organization: []string{"sigwatch.test"}},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil, tsaRootKey, tsaRootKey)
	if err != nil {
		return nil, fmt.Errorf("creating the TSA root: %w", err)
	}
	if s.tsaKey, err = newKey(); err != nil {
		return nil, err
	}
	eku, err := asn1.Marshal([]asn1.ObjectIdentifier{oidTimeStampingEKU})
	if err != nil {
		return nil, err
	}
	s.TSALeaf, err = createCertificate(&x509.Certificate{
		Subject:  pkix.Name{CommonName: "sigwatch test TSA", Organization: []string{"sigwatch.test"}},
		KeyUsage: x509.KeyUsageDigitalSignature,
		// crypto/x509 cannot mark the EKU critical: write the extension itself.
		ExtraExtensions: []pkix.Extension{{Id: oidExtKeyUsage, Critical: true, Value: eku}},
	}, s.TSARoot, s.tsaKey, tsaRootKey)
	if err != nil {
		return nil, fmt.Errorf("creating the TSA leaf: %w", err)
	}

	if s.logKey, err = newKey(); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(s.logKey.Public())
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(der)
	s.logID = sum[:]
	return s, nil
}

// LogID returns the transparency log's ID: the hex of sha256 of the PKIX DER of its public key.
func (s *Stack) LogID() string { return hex.EncodeToString(s.logID) }

// LogPublicKey returns the transparency log's public key.
func (s *Stack) LogPublicKey() crypto.PublicKey { return s.logKey.Public() }

// ChainPEM returns the intermediate and root CA certificates in PEM, as cosign's chain annotation holds
// them.
func (s *Stack) ChainPEM() []byte {
	return append(certificatePEM(s.Intermediate), certificatePEM(s.Root)...)
}

// TrustedRoot returns the stack as sigstore-go trusted material: the CA chain, the Rekor log, the TSA
// chain and no certificate transparency log (so no SCT is required). It is TrustedRootJSON parsed back.
func (s *Stack) TrustedRoot() (*root.TrustedRoot, error) {
	data, err := s.TrustedRootJSON()
	if err != nil {
		return nil, err
	}
	return root.NewTrustedRootFromJSON(data)
}

// TrustedRootJSON returns a Sigstore trusted_root.json (media type
// application/vnd.dev.sigstore.trustedroot+json;version=0.1) listing the CA chain, the Rekor log (baseUrl
// RekorURL) and the TSA chain, each valid from ValidFrom with no end, and no CT log.
func (s *Stack) TrustedRootJSON() ([]byte, error) {
	ca := &root.FulcioCertificateAuthority{
		Root:                s.Root,
		Intermediates:       []*x509.Certificate{s.Intermediate},
		ValidityPeriodStart: ValidFrom,
		URI:                 FulcioURL,
	}
	tsa := &root.SigstoreTimestampingAuthority{
		Root:                s.TSARoot,
		Leaf:                s.TSALeaf,
		ValidityPeriodStart: ValidFrom,
		URI:                 TSAURL,
	}
	rekor := &root.TransparencyLog{
		BaseURL:             RekorURL,
		ID:                  s.logID,
		ValidityPeriodStart: ValidFrom,
		HashFunc:            crypto.SHA256,
		PublicKey:           s.logKey.Public(),
		SignatureHashFunc:   crypto.SHA256,
	}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01,
		[]root.CertificateAuthority{ca},
		map[string]*root.TransparencyLog{},
		[]root.TimestampingAuthority{tsa},
		map[string]*root.TransparencyLog{s.LogID(): rekor})
	if err != nil {
		return nil, err
	}
	data, err := tr.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("marshaling the trusted root: %w", err)
	}
	return data, nil
}

// IssueCertificate issues a keyless signing certificate for id, valid from notBefore to notAfter, with a
// fresh ECDSA P-256 key, exactly as Fulcio would for the identity's OIDC token (see Identity). Its chain
// is Intermediate, Root.
func (s *Stack) IssueCertificate(id Identity, notBefore, notAfter time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	tmpl, err := id.template()
	if err != nil {
		return nil, nil, err
	}
	tmpl.NotBefore, tmpl.NotAfter = notBefore, notAfter
	cert, err := createCertificate(tmpl, s.Intermediate, key, s.intermediateKey)
	if err != nil {
		return nil, nil, fmt.Errorf("issuing a certificate for %s: %w", id.Subject, err)
	}
	return cert, key, nil
}

// Timestamp returns an RFC 3161 timestamp response (DER) over sig, hashed with SHA-256, dated at and
// signed by TSALeaf, which it embeds.
func (s *Stack) Timestamp(sig []byte, at time.Time) ([]byte, error) {
	sum := sha256.Sum256(sig)
	return s.stamp(timestamp.Timestamp{HashAlgorithm: crypto.SHA256, HashedMessage: sum[:], Time: at, AddTSACertificate: true})
}

// TimestampHandler serves the timestamp authority over HTTP, as cosign's --timestamp-server-url expects:
// it answers an RFC 3161 request (POST, application/timestamp-query) with a timestamp dated by clock (nil:
// time.Now).
func (s *Stack) TimestampHandler(clock func() time.Time) http.Handler {
	if clock == nil {
		clock = time.Now
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST an RFC 3161 timestamp request", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req, err := timestamp.ParseRequest(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp, err := s.stamp(timestamp.Timestamp{HashAlgorithm: req.HashAlgorithm, HashedMessage: req.HashedMessage,
			Nonce: req.Nonce, Time: clock(), AddTSACertificate: req.Certificates, ExtraExtensions: req.Extensions})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/timestamp-reply")
		_, _ = w.Write(resp)
	})
}

// stamp signs ts with the TSA leaf under the Sigstore timestamp policy.
func (s *Stack) stamp(ts timestamp.Timestamp) ([]byte, error) {
	ts.Policy = oidTSAPolicy
	resp, err := ts.CreateResponseWithOpts(s.TSALeaf, s.tsaKey, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("creating an RFC 3161 timestamp: %w", err)
	}
	return resp, nil
}

// createCertificate signs tmpl with parentKey (self-signed when parent is nil) after filling what every
// certificate of the stack shares: a random serial, the stack's validity unless set, a subject key ID.
func createCertificate(tmpl, parent *x509.Certificate, key, parentKey *ecdsa.PrivateKey) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 159))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = ValidFrom
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = ValidUntil
	}
	if tmpl.SubjectKeyId == nil {
		der, err := x509.MarshalPKIXPublicKey(key.Public())
		if err != nil {
			return nil, err
		}
		// Method 1 of RFC 5280 4.2.1.2, approximately: a hash of the key.
		sum := sha256.Sum256(der)
		tmpl.SubjectKeyId = sum[:20]
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func newKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating an ECDSA P-256 key: %w", err)
	}
	return k, nil
}

func certificatePEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// publicKeyPEM returns pub as a "PUBLIC KEY" PEM (PKIX), as cosign writes cosign.pub.
func publicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}
