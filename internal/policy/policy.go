// Package policy compiles ImageSignaturePolicy specs into what the verification engine runs: anchored
// identity matchers, parsed public keys, compiled CEL conditions, normalized image globs. Compilation
// checks everything the CRD schema cannot (a regular expression compiles, a PEM parses, a CEL condition
// compiles) and names the field that is wrong.
package policy

import (
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/identity"
	"github.com/sigwatch/sigwatch/internal/imageref"
	"github.com/sigwatch/sigwatch/internal/sigconf"
)

// DefaultReverifyInterval applies when a policy does not set reverifyInterval.
const DefaultReverifyInterval = time.Hour

// Error is a policy that cannot work as written. Reason is one of the API's Stalled reasons
// (InvalidPolicy, KeyUnavailable, TrustedRootUnavailable); Field is the JSON path of the culprit.
type Error struct {
	Policy string
	Reason string
	Field  string
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("policy %s: %s: %v", e.Policy, e.Field, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Policy is a compiled ImageSignaturePolicy.
type Policy struct {
	Name       string
	Generation int64
	// Scope is what the policy covers (the compiled policy's selector is known to parse).
	Scope
	Authorities         []*Authority
	Attestations        []*Attestation
	TrustedRoot         *sigwatchv1alpha1.ConfigMapKeyReference // nil: the public-good root, or TrustedRootTUF
	TrustedRootTUF      *TUFRoot                                // nil: the public-good root, or TrustedRoot
	SignatureRepository string                                  // "" : beside the image
	ReverifyInterval    time.Duration
	// Hash identifies the policy's content (spec and resolved keys): a cached verdict is reused only for
	// the same Hash.
	Hash string
}

// Authority is one trusted signer.
type Authority struct {
	Name string
	// Identities is set for keyless authorities: any one suffices. Regular expressions are anchored.
	Identities identity.Matchers
	// Key and KeyID are set for key authorities.
	Key   crypto.PublicKey
	KeyID string
	// TransparencyLog is Required, Optional or Disabled.
	TransparencyLog sigwatchv1alpha1.TransparencyLogMode
	// Online is what the live check of the log does (Off, Monitor or Require; Off when TransparencyLog
	// is Disabled).
	Online sigwatchv1alpha1.OnlineLogCheck
	// MaxSignatureAge, when positive, is how long an accepted signature counts from its trusted signing
	// time.
	MaxSignatureAge time.Duration
}

// Keyless reports whether the authority trusts Fulcio certificates rather than a key.
func (a *Authority) Keyless() bool { return a.Key == nil }

// Inputs are what a policy refers to outside itself.
type Inputs struct {
	// SecretKey returns the PEM bytes that a key.secretRef points at. Nil: secretRef is unavailable.
	SecretKey func(ref sigwatchv1alpha1.SecretKeyReference) ([]byte, error)
}

// Compile compiles an ImageSignaturePolicy. Errors are *Error.
func Compile(p *sigwatchv1alpha1.ImageSignaturePolicy, in Inputs) (*Policy, error) {
	c := &compiler{name: p.Name}
	out := &Policy{
		Name:                p.Name,
		Generation:          p.Generation,
		TrustedRoot:         trustedRootRef(p.Spec.TrustedRoot),
		TrustedRootTUF:      trustedRootTUF(p.Spec.TrustedRoot),
		SignatureRepository: p.Spec.SignatureRepository,
		ReverifyInterval:    DefaultReverifyInterval,
	}
	if tr := p.Spec.TrustedRoot; tr != nil {
		if (tr.ConfigMapRef.Name != "") == (tr.TUF != nil) {
			return nil, c.fail(sigwatchv1alpha1.InvalidPolicyReason, "spec.trustedRoot", errors.New("exactly one of configMapRef or tuf must be set"))
		}
		if tr.TUF != nil {
			if u, err := url.Parse(tr.TUF.Mirror); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return nil, c.fail(sigwatchv1alpha1.InvalidPolicyReason, "spec.trustedRoot.tuf.mirror", fmt.Errorf("%q is not an http(s) URL", tr.TUF.Mirror))
			}
		}
	}
	if len(p.Spec.Images) == 0 {
		return nil, c.fail(sigwatchv1alpha1.InvalidPolicyReason, "spec.images", errors.New("at least one image pattern is required"))
	}
	for i, img := range p.Spec.Images {
		if err := imageref.ValidatePattern(imageref.NormalizePattern(string(img))); err != nil {
			return nil, c.fail(sigwatchv1alpha1.InvalidPolicyReason, fmt.Sprintf("spec.images[%d]", i), err)
		}
	}
	out.Scope = ScopeOf(p.Spec)
	if err := out.Scope.SelectorErr; err != nil {
		return nil, c.fail(sigwatchv1alpha1.InvalidPolicyReason, namespaceSelectorField, err)
	}
	if p.Spec.SignatureRepository != "" {
		repo, err := imageref.NormalizeRepository(p.Spec.SignatureRepository)
		if err != nil {
			return nil, c.fail(sigwatchv1alpha1.InvalidPolicyReason, "spec.signatureRepository", err)
		}
		out.SignatureRepository = repo
	}
	if p.Spec.ReverifyInterval != nil {
		if p.Spec.ReverifyInterval.Duration < time.Minute {
			return nil, c.fail(sigwatchv1alpha1.InvalidPolicyReason, "spec.reverifyInterval", errors.New("must be at least 1m"))
		}
		out.ReverifyInterval = p.Spec.ReverifyInterval.Duration
	}
	if len(p.Spec.Authorities) == 0 {
		return nil, c.fail(sigwatchv1alpha1.InvalidPolicyReason, "spec.authorities", errors.New("at least one authority is required"))
	}
	var keyPEMs []string
	for i, a := range p.Spec.Authorities {
		auth, pem, err := c.authority(fmt.Sprintf("spec.authorities[%d]", i), a, in)
		if err != nil {
			return nil, err
		}
		out.Authorities = append(out.Authorities, auth)
		keyPEMs = append(keyPEMs, pem)
	}
	for i, a := range p.Spec.Attestations {
		att, err := compileAttestation(a)
		if err != nil {
			return nil, c.fail(sigwatchv1alpha1.InvalidPolicyReason, fmt.Sprintf("spec.attestations[%d].%s", i, err.field), err.err)
		}
		out.Attestations = append(out.Attestations, att)
	}
	out.Hash = contentHash(p.Spec, keyPEMs)
	return out, nil
}

type compiler struct{ name string }

func (c *compiler) fail(reason, field string, err error) error {
	return &Error{Policy: c.name, Reason: reason, Field: field, Err: err}
}

// TUFRoot is a TUF repository that publishes a policy's trust root.
type TUFRoot struct {
	Mirror string
	// RootRef holds the initial root.json (its Key defaulted).
	RootRef sigwatchv1alpha1.TUFRootReference
}

func trustedRootTUF(tr *sigwatchv1alpha1.TrustedRootSource) *TUFRoot {
	if tr == nil || tr.TUF == nil {
		return nil
	}
	out := &TUFRoot{Mirror: tr.TUF.Mirror, RootRef: tr.TUF.RootRef}
	if out.RootRef.Key == "" {
		out.RootRef.Key = "root.json"
	}
	return out
}

func trustedRootRef(tr *sigwatchv1alpha1.TrustedRootSource) *sigwatchv1alpha1.ConfigMapKeyReference {
	if tr == nil || tr.ConfigMapRef.Name == "" {
		return nil
	}
	ref := tr.ConfigMapRef
	if ref.Key == "" {
		ref.Key = "trusted_root.json"
	}
	return &ref
}

func (c *compiler) authority(field string, a sigwatchv1alpha1.Authority, in Inputs) (*Authority, string, error) {
	out := &Authority{Name: a.Name, TransparencyLog: sigwatchv1alpha1.TransparencyLogRequired, Online: sigwatchv1alpha1.OnlineLogMonitor}
	if a.TransparencyLog != nil && a.TransparencyLog.Mode != "" {
		out.TransparencyLog = a.TransparencyLog.Mode
	}
	if a.TransparencyLog != nil && a.TransparencyLog.Online != "" {
		out.Online = a.TransparencyLog.Online
	}
	if out.TransparencyLog == sigwatchv1alpha1.TransparencyLogDisabled {
		out.Online = sigwatchv1alpha1.OnlineLogOff
	}
	if a.MaxSignatureAge != nil {
		if a.MaxSignatureAge.Duration < time.Minute {
			return nil, "", c.fail(sigwatchv1alpha1.InvalidPolicyReason, field+".maxSignatureAge", errors.New("must be at least 1m"))
		}
		out.MaxSignatureAge = a.MaxSignatureAge.Duration
	}
	switch {
	case a.Keyless != nil && a.Key == nil:
		if out.TransparencyLog == sigwatchv1alpha1.TransparencyLogDisabled {
			return nil, "", c.fail(sigwatchv1alpha1.InvalidPolicyReason, field+".transparencyLog.mode",
				errors.New("Disabled is only allowed with key"))
		}
		if len(a.Keyless.Identities) == 0 {
			return nil, "", c.fail(sigwatchv1alpha1.InvalidPolicyReason, field+".keyless.identities", errors.New("at least one identity is required"))
		}
		for j, id := range a.Keyless.Identities {
			ci, err := c.identity(fmt.Sprintf("%s.keyless.identities[%d]", field, j), id)
			if err != nil {
				return nil, "", err
			}
			out.Identities = append(out.Identities, ci)
		}
		return out, "", nil
	case a.Key != nil && a.Keyless == nil:
		pem, keyField, err := c.keyPEM(field+".key", a.Key, in)
		if err != nil {
			return nil, "", err
		}
		key, id, err := sigconf.ParsePublicKey([]byte(pem))
		if err != nil {
			return nil, "", c.fail(sigwatchv1alpha1.KeyUnavailableReason, keyField, err)
		}
		out.Key, out.KeyID = key, id
		return out, pem, nil
	default:
		return nil, "", c.fail(sigwatchv1alpha1.InvalidPolicyReason, field, errors.New("exactly one of keyless or key must be set"))
	}
}

func (c *compiler) keyPEM(field string, k *sigwatchv1alpha1.KeyAuthority, in Inputs) (string, string, error) {
	switch {
	case k.PublicKey != "" && k.SecretRef == nil:
		return k.PublicKey, field + ".publicKey", nil
	case k.SecretRef != nil && k.PublicKey == "":
		f := field + ".secretRef"
		if in.SecretKey == nil {
			return "", f, c.fail(sigwatchv1alpha1.KeyUnavailableReason, f,
				fmt.Errorf("Secret %s/%s cannot be read here; give the key inline as publicKey", k.SecretRef.Namespace, k.SecretRef.Name))
		}
		data, err := in.SecretKey(*k.SecretRef)
		if err != nil {
			return "", f, c.fail(sigwatchv1alpha1.KeyUnavailableReason, f, err)
		}
		return string(data), f, nil
	default:
		return "", field, c.fail(sigwatchv1alpha1.InvalidPolicyReason, field, errors.New("exactly one of publicKey or secretRef must be set"))
	}
}

func (c *compiler) identity(field string, id sigwatchv1alpha1.Identity) (*identity.Matcher, error) {
	m, err := identity.Compile(id)
	if err != nil {
		var fe *identity.FieldError
		if errors.As(err, &fe) && fe.Field != "" {
			return nil, c.fail(sigwatchv1alpha1.InvalidPolicyReason, field+"."+fe.Field, fe.Err)
		}
		if errors.As(err, &fe) {
			err = fe.Err
		}
		return nil, c.fail(sigwatchv1alpha1.InvalidPolicyReason, field, err)
	}
	return m, nil
}

func contentHash(spec sigwatchv1alpha1.ImageSignaturePolicySpec, keyPEMs []string) string {
	h := sha256.New()
	data, _ := json.Marshal(struct {
		Spec sigwatchv1alpha1.ImageSignaturePolicySpec
		Keys []string
	}{spec, keyPEMs})
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// MatchesImage reports whether one of the policy's globs matches the normalized repository, whatever the
// namespace (the CLI's question).
func (p *Policy) MatchesImage(repository string) bool { return p.Covers(repository, nil) }
