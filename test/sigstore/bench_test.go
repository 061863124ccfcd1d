package sigstore

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

// BenchmarkWrite measures one signature written to an in-process registry, pushes included.
func BenchmarkWrite(b *testing.B) {
	f := newFixture(b)
	signers := []struct {
		name   string
		signer Signer
		opts   SignOptions
	}{
		{"key", f.key, SignOptions{}},
		{"keyless", f.keyless, SignOptions{}},
		{"keyless+tsa", f.keyless, SignOptions{Timestamp: true}},
	}
	for _, format := range []string{"legacy", "bundle"} {
		for _, s := range signers {
			b.Run(format+"/"+s.name, func(b *testing.B) {
				w := startRegistry(b, true)
				ctx := context.Background()
				images := make([]name.Digest, b.N)
				for i := range images {
					images[i] = pushImage(b, w, fmt.Sprintf("app%d", i%16))
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					var err error
					if format == "legacy" {
						_, err = w.SignLegacy(ctx, images[i], s.signer, s.opts)
					} else {
						_, err = w.SignBundle(ctx, images[i], s.signer, s.opts)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkMaterial measures the cryptography of one signature without the registry.
func BenchmarkMaterial(b *testing.B) {
	s := newStack(b)
	key := mustKeySigner(b, s)
	id := GitHubActions("acme/app", "release.yml", "refs/heads/main")
	payload, _ := json.Marshal(simpleSigning("registry.example/app", "sha256:"+fmt.Sprintf("%064x", 1), nil))
	m, _ := key.material(time.Now())
	sig, _ := m.sign(payload)
	env, _ := (&job{m: m}).envelope(&Result{Payload: payload})
	envJSON, _ := json.Marshal(env)

	b.Run("key signature", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := m.sign(payload); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("keyless certificate", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, _, err := s.IssueCertificate(id, ValidFrom, ValidUntil); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, req := range []EntryRequest{
		{Kind: KindHashedRekord, Artifact: payload, Signature: sig, Verifier: key.PublicKeyPEM()},
		{Kind: KindDSSE, Artifact: envJSON, Verifier: key.PublicKeyPEM()},
	} {
		b.Run("log entry/"+req.Kind, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, err := s.LogEntry(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("timestamp", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := s.Timestamp(sig, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
