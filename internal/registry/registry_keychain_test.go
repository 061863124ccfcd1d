package registry

import (
	"context"
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	. "github.com/onsi/gomega"

	testregistry "github.com/sigwatch/sigwatch/test/registry"
)

type countingKeychain struct {
	calls int
	auth  authn.Authenticator
}

func (k *countingKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	k.calls++
	if k.auth == nil {
		return authn.Anonymous, nil
	}
	return k.auth, nil
}

// TestCredentialsScopeTransports: credentials travel with the request (Client.With), and a request made
// with other credentials, or with none, never reuses a transport authenticated with the first ones.
func TestCredentialsScopeTransports(t *testing.T) {
	g := NewWithT(t)
	reg := testregistry.Start(t, true)
	repo := reg.Repository(t, "team/private")
	img := testregistry.RandomImage(t, 64)
	reg.PushTag(t, "team/private", "v1", img)
	// From here on the registry answers only user "team" with the right password.
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if u, p, ok := r.BasicAuth(); ok && u == "team" && p == "s3cret" {
			return false
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		w.WriteHeader(http.StatusUnauthorized)
		return true
	})
	c := New(Options{Insecure: []string{"127.0.0.1:*"}, MaxRetries: -1})
	good := &countingKeychain{auth: &authn.Basic{Username: "team", Password: "s3cret"}}
	wrong := &countingKeychain{auth: &authn.Basic{Username: "team", Password: "guess"}}
	ref := repo.Digest(mustDigest(t, img).String())

	_, err := c.With(Credentials{Keychain: good, ID: "namespace-a"}).Head(context.Background(), ref)
	g.Expect(err).NotTo(HaveOccurred(), "the pods' own credentials are used")
	_, err = c.With(Credentials{Keychain: good, ID: "namespace-a"}).Head(context.Background(), ref)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(good.calls).To(Equal(1), "the same credentials reuse their authenticated transport")

	_, err = c.With(Credentials{Keychain: wrong, ID: "namespace-b"}).Head(context.Background(), ref)
	g.Expect(err).To(Satisfy(IsUnavailable), "other credentials never ride on namespace-a's transport")
	g.Expect(wrong.calls).To(Equal(1))

	_, err = c.Head(context.Background(), ref)
	g.Expect(err).To(Satisfy(IsUnavailable), "the default (anonymous) keychain never rides on it either")

	_, err = c.With(Credentials{Keychain: wrong}).Head(context.Background(), ref)
	g.Expect(err).To(Satisfy(IsUnavailable), "credentials without an ID do not share the default's transports")

	// Keychains without an ID cannot be told apart: nothing is cached for them.
	_, err = c.With(Credentials{Keychain: good}).Head(context.Background(), ref)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = c.With(Credentials{Keychain: wrong}).Head(context.Background(), ref)
	g.Expect(err).To(Satisfy(IsUnavailable), "another unnamed keychain never rides on the first one's transport")

	g.Expect(authKey(Credentials{}, repo)).NotTo(Equal(authKey(Credentials{Keychain: good}, repo)))
	g.Expect(authKey(Credentials{Keychain: good, ID: "a"}, repo)).NotTo(Equal(authKey(Credentials{Keychain: good, ID: "b"}, repo)))
}
