package verification

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/imageref"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/internal/registry"
	"github.com/sigwatch/sigwatch/internal/trust"
)

// newEngine returns an engine reading a loopback registry over plain HTTP, with every policy judged
// against tr, and the registry client (to count requests).
func newEngine(t testing.TB, tr *trust.Root, mutate ...func(*Options)) (*Engine, *registry.Client) {
	t.Helper()
	reg := registry.New(registry.Options{Insecure: []string{"127.0.0.1:*"}})
	opts := Options{
		Registry: reg,
		Roots:    func(context.Context, *policy.Policy) (*trust.Root, error) { return tr, nil },
	}
	for _, m := range mutate {
		m(&opts)
	}
	return New(opts), reg
}

func embeddedRoot(t testing.TB) *trust.Root {
	t.Helper()
	r, err := trust.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func image(t testing.TB, d name.Digest) imageref.Image {
	t.Helper()
	img, err := imageref.Parse(d.String())
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// keyPolicy is a policy trusting one PEM key, with the given transparency log mode.
func keyPolicy(t testing.TB, name string, pem []byte, mode sigwatchv1alpha1.TransparencyLogMode, atts ...sigwatchv1alpha1.Attestation) *policy.Policy {
	t.Helper()
	return compile(t, &sigwatchv1alpha1.ImageSignaturePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{
			Images: []sigwatchv1alpha1.ImagePattern{"**"},
			Authorities: []sigwatchv1alpha1.Authority{{
				Name:            "team-key",
				Key:             &sigwatchv1alpha1.KeyAuthority{PublicKey: string(pem)},
				TransparencyLog: &sigwatchv1alpha1.TransparencyLogPolicy{Mode: mode},
			}},
			Attestations: atts,
		},
	})
}

func compile(t testing.TB, p *sigwatchv1alpha1.ImageSignaturePolicy) *policy.Policy {
	t.Helper()
	cp, err := policy.Compile(p, policy.Inputs{})
	if err != nil {
		t.Fatalf("compiling policy: %v", err)
	}
	return cp
}

func parseImage(ref string) (imageref.Image, error) { return imageref.Parse(ref) }

type policyT = policy.Policy
