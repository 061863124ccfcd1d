package sigstore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// Signer signs for a Writer: a KeySigner or a KeylessSigner.
type Signer interface {
	// material returns the key and what identifies it for a signature made at signingTime.
	material(signingTime time.Time) (*material, error)
}

// material is what one signature is made with.
type material struct {
	key *ecdsa.PrivateKey
	// cert is the keyless certificate; nil for a key.
	cert *x509.Certificate
	// stack is the Sigstore that logs and timestamps, if any.
	stack *Stack
	// verifierPEM is the certificate or public key PEM, as the log records it.
	verifierPEM []byte
	// keyHint identifies a key in a bundle's verification material.
	keyHint string
}

// KeySigner signs with a long-lived ECDSA P-256 key, as `cosign sign --key`. It is safe for concurrent
// use.
type KeySigner struct {
	// Key is the private key.
	Key *ecdsa.PrivateKey
	// Stack, if set, logs the signatures in its transparency log and timestamps them on request; without
	// it, SignOptions may not ask for either.
	Stack *Stack

	pem  []byte
	hint string
}

// NewKeySigner generates a key. stack may be nil (no transparency log, no timestamps).
func NewKeySigner(stack *Stack) (*KeySigner, error) {
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	return KeySignerFor(key, stack)
}

// KeySignerFor signs with an existing key. stack may be nil.
func KeySignerFor(key *ecdsa.PrivateKey, stack *Stack) (*KeySigner, error) {
	pemBytes, err := publicKeyPEM(key.Public())
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(der)
	return &KeySigner{Key: key, Stack: stack, pem: pemBytes, hint: base64.StdEncoding.EncodeToString(sum[:])}, nil
}

// PublicKey returns the public key.
func (k *KeySigner) PublicKey() crypto.PublicKey { return k.Key.Public() }

// PublicKeyPEM returns the public key as a "PUBLIC KEY" PEM, the content of a cosign.pub.
func (k *KeySigner) PublicKeyPEM() []byte { return k.pem }

// KeyHint returns the public key's hint in a bundle: base64 of the SHA-256 of its PKIX DER, as cosign
// writes it.
func (k *KeySigner) KeyHint() string { return k.hint }

func (k *KeySigner) material(time.Time) (*material, error) {
	if k.Key == nil || k.pem == nil {
		return nil, errors.New("a KeySigner is made with NewKeySigner or KeySignerFor")
	}
	return &material{key: k.Key, stack: k.Stack, verifierPEM: k.pem, keyHint: k.hint}, nil
}

// KeylessSigner signs with a fresh key and a certificate for Identity issued by Stack for each signature,
// as `cosign sign` with an OIDC token and Fulcio.
type KeylessSigner struct {
	Stack    *Stack
	Identity Identity
	// NotBefore and NotAfter bound the certificate. Unset, they are one minute before and ten minutes
	// after the signing time (the integrated time of the log entry if one is chosen, else now).
	NotBefore, NotAfter time.Time
}

func (k *KeylessSigner) material(signingTime time.Time) (*material, error) {
	if k.Stack == nil {
		return nil, errors.New("a KeylessSigner needs a Stack")
	}
	notBefore, notAfter := k.NotBefore, k.NotAfter
	if notBefore.IsZero() {
		notBefore = signingTime.Add(-time.Minute)
	}
	if notAfter.IsZero() {
		notAfter = signingTime.Add(10 * time.Minute)
	}
	cert, key, err := k.Stack.IssueCertificate(k.Identity, notBefore, notAfter)
	if err != nil {
		return nil, err
	}
	return &material{key: key, cert: cert, stack: k.Stack, verifierPEM: certificatePEM(cert)}, nil
}

// sign signs the SHA-256 of data: ECDSA, ASN.1, as cosign does.
func (m *material) sign(data []byte) ([]byte, error) {
	sum := sha256.Sum256(data)
	sig, err := ecdsa.SignASN1(rand.Reader, m.key, sum[:])
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	return sig, nil
}
