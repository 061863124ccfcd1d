package policy

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
)

// ParsePublicKey parses a PEM public key of a kind sigwatch accepts (ECDSA P-256 or P-384, RSA of at
// least 2048 bits, Ed25519) and returns it with its key ID, the hex sha256 of its DER form.
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
		if k.N.BitLen() < 2048 {
			return nil, "", fmt.Errorf("RSA key of %d bits is too small (at least 2048)", k.N.BitLen())
		}
	case ed25519.PublicKey:
	default:
		return nil, "", fmt.Errorf("public key type %T is not accepted", key)
	}
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return nil, "", fmt.Errorf("encoding public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return key, hex.EncodeToString(sum[:]), nil
}
