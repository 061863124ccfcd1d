package verification

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	. "github.com/onsi/gomega"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/internal/registry"
	"github.com/sigwatch/sigwatch/test/sigstore"
)

type basicKeychain struct{ user, password string }

func (k basicKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return &authn.Basic{Username: k.user, Password: k.password}, nil
}

// TestRequestsInFlightAreNotSharedAcrossCredentials: a namespace without pull secrets and one with them
// verify the same private digest at the same moment. The one with credentials must not join the
// anonymous request in flight and inherit its 401: it gets its own request, and its verdict.
func TestRequestsInFlightAreNotSharedAcrossCredentials(t *testing.T) {
	g := NewWithT(t)
	k := newKeyless(t, true)
	d := k.push(t, "private/app")
	_, err := k.writer.SignBundle(context.Background(), d, k.ci, sigstore.SignOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	anonymousArrived := make(chan struct{})
	release := make(chan struct{})
	var first atomic.Bool
	k.reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if u, p, ok := r.BasicAuth(); ok && u == "team" && p == "s3cret" {
			return false
		}
		if first.CompareAndSwap(false, true) {
			close(anonymousArrived)
			<-release // hold the anonymous request in flight
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		w.WriteHeader(http.StatusUnauthorized)
		return true
	})
	pols := []*policy.Policy{releasePolicy(t)}
	var anonymous *Result
	done := make(chan struct{})
	go func() {
		defer close(done)
		anonymous = k.engine.Verify(context.Background(), Request{Image: image(t, d), Policies: pols})
	}()
	<-anonymousArrived
	withSecrets := make(chan *Result, 1)
	go func() {
		withSecrets <- k.engine.Verify(context.Background(), Request{Image: image(t, d), Policies: pols,
			Credentials: registry.Credentials{Keychain: basicKeychain{"team", "s3cret"}, ID: "pull-secrets-of-team"}})
	}()
	var got *Result
	select {
	case got = <-withSecrets: // it did not wait for the anonymous request: it sent its own
	case <-time.After(10 * time.Second):
	}
	close(release)
	<-done
	if got == nil {
		got = <-withSecrets
	}
	g.Expect(got.Policies[0].Result).To(Equal(sigwatchv1alpha1.PolicyVerified), "%s: %s", got.Policies[0].Reason, got.Policies[0].Message)
	g.Expect(anonymous.Policies[0].Reason).To(Equal(sigwatchv1alpha1.RegistryUnavailableReason), "the anonymous one is denied")
}
