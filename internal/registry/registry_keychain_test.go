package registry

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	. "github.com/onsi/gomega"
)

type countingKeychain struct{ calls int }

func (k *countingKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	k.calls++
	return authn.Anonymous, nil
}

// TestWithKeychainScopesCredentials: a request made with other credentials never reuses a transport
// authenticated with the first ones.
func TestWithKeychainScopesCredentials(t *testing.T) {
	g := NewWithT(t)
	c := New(Options{Insecure: []string{"127.0.0.1:*"}})
	repo, err := name.NewRepository("127.0.0.1:1/app")
	g.Expect(err).NotTo(HaveOccurred())
	a, b := &countingKeychain{}, &countingKeychain{}
	ctxA := WithKeychain(context.Background(), a, "namespace-a")
	ctxB := WithKeychain(context.Background(), b, "namespace-b")
	g.Expect(c.authKey(ctxA, repo)).NotTo(Equal(c.authKey(ctxB, repo)))
	g.Expect(c.authKey(context.Background(), repo)).To(Equal("|127.0.0.1:1/app"))
	_, _ = c.client(ctxA, repo) // the registry is not there: the keychain is still asked first
	_, _ = c.client(ctxB, repo)
	g.Expect(a.calls).To(Equal(1))
	g.Expect(b.calls).To(Equal(1))
}
