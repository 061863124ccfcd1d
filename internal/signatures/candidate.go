// Package signatures finds the Sigstore signatures and attestations of an image digest in a registry, in
// both storage formats cosign writes (Sigstore bundles as OCI 1.1 referrers; the legacy `.sig` and `.att`
// tags), and turns each into a sigstore-go bundle plus the binding facts that sigstore-go does not check.
package signatures

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sigstore/sigstore-go/pkg/bundle"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
)

// CosignSignPredicate is the predicate type of cosign v3's bundle-format image signatures (a DSSE in-toto
// statement whose subject is the image digest).
const CosignSignPredicate = "https://sigstore.dev/cosign/sign/v1"

// Kind separates signatures from attestations.
type Kind int

const (
	// KindSignature is an image signature.
	KindSignature Kind = iota
	// KindAttestation is an in-toto attestation about the image.
	KindAttestation
)

// Candidate is one signature or attestation found for the image, not yet judged.
type Candidate struct {
	Kind   Kind
	Format sigwatchv1alpha1.SignatureFormat
	// ManifestDigest is the digest of the registry manifest that holds it.
	ManifestDigest string
	// Bundle is the signature in sigstore-go's model; nil when Err is set.
	Bundle *bundle.Bundle
	// Err says why the candidate cannot be used (malformed, too large, corrupt): it counts as an
	// invalid signature, unless Unreadable.
	Err error
	// Unreadable says that Err came from reading the registry (a blob it does not have, a body that does
	// not match its digest or is longer than its descriptor says), not from content read in full and
	// checked against its digest: the candidate is undecided, and no verdict reached with it is kept.
	Unreadable bool
	// Payload is the signed simple-signing payload of a legacy signature.
	Payload []byte
	// Statement is the in-toto statement of a DSSE signature or attestation: the parts that binding
	// reads (its predicate is read only when a verified attestation's conditions need it; see Predicate).
	Statement *Statement
}

// MaxSubjects caps the subjects read from one in-toto statement (an image's attestation has one; a
// build's provenance a few dozen).
const MaxSubjects = 1024

// Statement is the part of an in-toto statement that sigwatch reads.
type Statement struct {
	Type          string          `json:"_type"`
	PredicateType string          `json:"predicateType"`
	Subject       []Subject       `json:"subject"`
	Predicate     json.RawMessage `json:"predicate,omitempty"`
}

// Predicate returns the in-toto statement's predicate: Statement.Predicate when set, else read from the
// DSSE envelope. Call it only for a verified attestation.
func (c *Candidate) Predicate() (json.RawMessage, error) {
	if c.Statement != nil && c.Statement.Predicate != nil {
		return c.Statement.Predicate, nil
	}
	env := c.Bundle.GetDsseEnvelope()
	if env == nil {
		return nil, nil
	}
	var p struct {
		Predicate json.RawMessage `json:"predicate"`
	}
	if err := json.Unmarshal(env.Payload, &p); err != nil {
		return nil, fmt.Errorf("in-toto statement does not parse: %w", err)
	}
	return p.Predicate, nil
}

// Subject is an in-toto subject.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// SubjectDigests returns the subjects' sha256 digests as "sha256:<hex>".
func (s *Statement) SubjectDigests() []string {
	var out []string
	for _, sub := range s.Subject {
		if d := sub.Digest["sha256"]; d != "" {
			out = append(out, "sha256:"+strings.ToLower(d))
		}
	}
	return out
}

// simpleSigning is cosign's legacy signed payload.
type simpleSigning struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
}

// CosignSignatureType is critical.type of a cosign simple-signing payload (cosign and sigstore/sigstore's
// payload.Cosign refuse any other).
const CosignSignatureType = "cosign container image signature"

// inTotoStatementTypes are the in-toto statement _type values accepted (v1, and v0.1 that cosign v2
// wrote).
var inTotoStatementTypes = []string{"https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1"}

// ErrBinding reports a signature that is bound to something else than the image digest.
var ErrBinding = errors.New("signature is not bound to the image digest")

// CheckBinding checks what sigstore-go does not: that the candidate is about digest. A legacy
// signature's payload must be of the cosign type and name it in critical.image.docker-manifest-digest; a
// bundle signature must be an in-toto statement of predicate type CosignSignPredicate whose subject is
// the digest (a message signature carries no payload to bind, and is refused); an attestation's subject
// must be the digest.
func (c *Candidate) CheckBinding(digest string) error {
	switch {
	case c.Err != nil:
		return c.Err
	case c.Payload != nil:
		var ss simpleSigning
		if err := json.Unmarshal(c.Payload, &ss); err != nil {
			return fmt.Errorf("%w: simple-signing payload does not parse: %v", ErrBinding, err)
		}
		if ss.Critical.Type != CosignSignatureType {
			return fmt.Errorf("%w: payload type %q is not a %s", ErrBinding, ss.Critical.Type, CosignSignatureType)
		}
		if got := ss.Critical.Image.DockerManifestDigest; got != digest {
			return fmt.Errorf("%w: the payload signs %s", ErrBinding, orNothing(got))
		}
		return nil
	case c.Statement != nil:
		if !slices.Contains(inTotoStatementTypes, c.Statement.Type) {
			return fmt.Errorf("%w: %q is not an in-toto statement type", ErrBinding, c.Statement.Type)
		}
		if c.Kind == KindSignature && c.Statement.PredicateType != CosignSignPredicate {
			return fmt.Errorf("%w: predicate type %q is not a cosign signature", ErrBinding, c.Statement.PredicateType)
		}
		subjects := c.Statement.SubjectDigests()
		if !slices.Contains(subjects, digest) {
			return fmt.Errorf("%w: the statement's subject is %s", ErrBinding, orNothing(strings.Join(subjects, ", ")))
		}
		return nil
	default:
		return fmt.Errorf("%w: neither a payload nor a statement", ErrBinding)
	}
}

func orNothing(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

// statementOf parses the in-toto statement of a bundle's DSSE envelope, without verifying it (the
// verifier does that); nil when the bundle holds a message signature.
func statementOf(b *bundle.Bundle) (*Statement, error) {
	env := b.GetDsseEnvelope()
	if env == nil {
		return nil, nil
	}
	if env.PayloadType != "application/vnd.in-toto+json" {
		return nil, fmt.Errorf("DSSE payload type %q is not in-toto", env.PayloadType)
	}
	var st struct {
		Type          string      `json:"_type"`
		PredicateType string      `json:"predicateType"`
		Subject       subjectList `json:"subject"`
	}
	if err := json.Unmarshal(env.Payload, &st); err != nil {
		return nil, fmt.Errorf("in-toto statement does not parse: %w", err)
	}
	return &Statement{Type: st.Type, PredicateType: st.PredicateType, Subject: st.Subject}, nil
}

// subjectList reads at most MaxSubjects subjects, one at a time.
type subjectList []Subject

func (l *subjectList) UnmarshalJSON(b []byte) error {
	// A repeated "subject" key replaces the list, as encoding/json and in-toto's own readers do: the
	// statement must bind what every other verifier reads.
	*l = nil
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		return nil // null
	}
	if tok != json.Delim('[') {
		return fmt.Errorf("subject is not a list")
	}
	for dec.More() {
		if len(*l) == MaxSubjects {
			return fmt.Errorf("more than %d subjects", MaxSubjects)
		}
		var s Subject
		if err := dec.Decode(&s); err != nil {
			return err
		}
		*l = append(*l, s)
	}
	_, err = dec.Token()
	return err
}
