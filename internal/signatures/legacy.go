package signatures

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
)

// Annotations that cosign writes on the layers of its legacy `.sig` and `.att` manifests.
const (
	AnnotationSignature   = "dev.cosignproject.cosign/signature"
	AnnotationCertificate = "dev.sigstore.cosign/certificate"
	AnnotationChain       = "dev.sigstore.cosign/chain"
	AnnotationBundle      = "dev.sigstore.cosign/bundle"
	AnnotationTimestamp   = "dev.sigstore.cosign/rfc3161timestamp"
	AnnotationPredicate   = "predicateType"
)

// Media types.
const (
	MediaTypeSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
	MediaTypeDSSE          = "application/vnd.dsse.envelope.v1+json"
	MediaTypeBundleV03     = "application/vnd.dev.sigstore.bundle.v0.3+json"
	// bundleV01 is the bundle version whose tlog entries carry only an inclusion promise (a SET), as
	// legacy cosign signatures do.
	bundleV01 = "application/vnd.dev.sigstore.bundle+json;version=0.1"
)

// rekorBundle is cosign's `dev.sigstore.cosign/bundle` annotation: a Rekor SET and the entry it signs.
type rekorBundle struct {
	SignedEntryTimestamp []byte `json:"SignedEntryTimestamp"`
	Payload              struct {
		Body           string `json:"body"` // base64 of the canonicalized entry
		IntegratedTime int64  `json:"integratedTime"`
		LogIndex       int64  `json:"logIndex"`
		LogID          string `json:"logID"` // hex
	} `json:"Payload"`
}

type rfc3161Annotation struct {
	SignedRFC3161Timestamp []byte `json:"SignedRFC3161Timestamp"`
}

// LegacyToBundle converts one layer of a legacy cosign `.sig` manifest (simple-signing payload) or `.att`
// manifest (DSSE envelope, when envelope is true) with its annotations into the Sigstore bundle model:
// the leaf certificate and chain (or a public-key hint), the SET as inclusion promise, the RFC 3161
// timestamp, and a message signature over sha256(payload) or the DSSE envelope. sigstore-go then judges
// it exactly as a native bundle.
func LegacyToBundle(layer []byte, annotations map[string]string, envelope bool) (*bundle.Bundle, error) {
	pb := &protobundle.Bundle{MediaType: bundleV01, VerificationMaterial: &protobundle.VerificationMaterial{}}

	if envelope {
		env, err := parseEnvelope(layer)
		if err != nil {
			return nil, err
		}
		pb.Content = &protobundle.Bundle_DsseEnvelope{DsseEnvelope: env}
	} else {
		sig, err := base64.StdEncoding.DecodeString(annotations[AnnotationSignature])
		if err != nil || len(sig) == 0 {
			return nil, fmt.Errorf("annotation %s is missing or not base64", AnnotationSignature)
		}
		sum := sha256.Sum256(layer)
		pb.Content = &protobundle.Bundle_MessageSignature{MessageSignature: &protocommon.MessageSignature{
			MessageDigest: &protocommon.HashOutput{Algorithm: protocommon.HashAlgorithm_SHA2_256, Digest: sum[:]},
			Signature:     sig,
		}}
	}

	if certPEM := annotations[AnnotationCertificate]; certPEM != "" {
		chain, err := certificateChain(certPEM, annotations[AnnotationChain])
		if err != nil {
			return nil, err
		}
		pb.VerificationMaterial.Content = &protobundle.VerificationMaterial_X509CertificateChain{X509CertificateChain: chain}
	} else {
		pb.VerificationMaterial.Content = &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{}}
	}

	if set := annotations[AnnotationBundle]; set != "" {
		entry, err := tlogEntry(set)
		if err != nil {
			return nil, err
		}
		pb.VerificationMaterial.TlogEntries = []*protorekor.TransparencyLogEntry{entry}
	}
	if ts := annotations[AnnotationTimestamp]; ts != "" {
		var a rfc3161Annotation
		if err := json.Unmarshal([]byte(ts), &a); err != nil || len(a.SignedRFC3161Timestamp) == 0 {
			return nil, fmt.Errorf("annotation %s is not an RFC 3161 timestamp", AnnotationTimestamp)
		}
		pb.VerificationMaterial.TimestampVerificationData = &protobundle.TimestampVerificationData{
			Rfc3161Timestamps: []*protocommon.RFC3161SignedTimestamp{{SignedTimestamp: a.SignedRFC3161Timestamp}},
		}
	}
	b, err := bundle.NewBundle(pb)
	if err != nil {
		return nil, fmt.Errorf("building bundle from legacy signature: %w", err)
	}
	return b, nil
}

func certificateChain(leafPEM, chainPEM string) (*protocommon.X509CertificateChain, error) {
	leaf, err := pemCertificates([]byte(leafPEM))
	if err != nil || len(leaf) != 1 {
		return nil, fmt.Errorf("annotation %s is not one PEM certificate", AnnotationCertificate)
	}
	certs := []*protocommon.X509Certificate{{RawBytes: leaf[0].Raw}}
	if chainPEM != "" {
		chain, err := pemCertificates([]byte(chainPEM))
		if err != nil {
			return nil, fmt.Errorf("annotation %s: %w", AnnotationChain, err)
		}
		for _, c := range chain {
			// Roots come from the trust root, never from the signature: keep intermediates only.
			if c.CheckSignatureFrom(c) == nil {
				continue
			}
			certs = append(certs, &protocommon.X509Certificate{RawBytes: c.Raw})
		}
	}
	return &protocommon.X509CertificateChain{Certificates: certs}, nil
}

func pemCertificates(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing certificate: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return out, nil
}

func tlogEntry(annotation string) (*protorekor.TransparencyLogEntry, error) {
	var rb rekorBundle
	if err := json.Unmarshal([]byte(annotation), &rb); err != nil {
		return nil, fmt.Errorf("annotation %s is not a Rekor bundle: %w", AnnotationBundle, err)
	}
	body, err := base64.StdEncoding.DecodeString(rb.Payload.Body)
	if err != nil {
		return nil, fmt.Errorf("annotation %s: entry body is not base64: %w", AnnotationBundle, err)
	}
	logID, err := hex.DecodeString(rb.Payload.LogID)
	if err != nil {
		return nil, fmt.Errorf("annotation %s: logID is not hex: %w", AnnotationBundle, err)
	}
	if len(body) == 0 || len(logID) == 0 {
		return nil, fmt.Errorf("annotation %s: the entry has no body or no logID", AnnotationBundle)
	}
	var kv struct {
		Kind       string `json:"kind"`
		APIVersion string `json:"apiVersion"`
	}
	if err := json.Unmarshal(body, &kv); err != nil || kv.Kind == "" {
		return nil, fmt.Errorf("annotation %s: entry body has no kind", AnnotationBundle)
	}
	return &protorekor.TransparencyLogEntry{
		LogIndex:          rb.Payload.LogIndex,
		LogId:             &protocommon.LogId{KeyId: logID},
		KindVersion:       &protorekor.KindVersion{Kind: kv.Kind, Version: kv.APIVersion},
		IntegratedTime:    rb.Payload.IntegratedTime,
		InclusionPromise:  &protorekor.InclusionPromise{SignedEntryTimestamp: rb.SignedEntryTimestamp},
		CanonicalizedBody: body,
	}, nil
}

// dsseJSON is the JSON form of a DSSE envelope.
type dsseJSON struct {
	PayloadType string `json:"payloadType"`
	Payload     []byte `json:"payload"`
	Signatures  []struct {
		KeyID string `json:"keyid"`
		Sig   []byte `json:"sig"`
	} `json:"signatures"`
}

func parseEnvelope(data []byte) (*protodsse.Envelope, error) {
	var e dsseJSON
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("DSSE envelope does not parse: %w", err)
	}
	if len(e.Signatures) == 0 {
		return nil, errors.New("DSSE envelope has no signature")
	}
	out := &protodsse.Envelope{PayloadType: e.PayloadType, Payload: e.Payload}
	for _, s := range e.Signatures {
		out.Signatures = append(out.Signatures, &protodsse.Signature{Keyid: s.KeyID, Sig: s.Sig})
	}
	return out, nil
}
