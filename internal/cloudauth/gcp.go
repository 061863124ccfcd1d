package cloudauth

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/google"
	"golang.org/x/oauth2"
	googauth "golang.org/x/oauth2/google"
)

// gcpScope is the OAuth scope of registry access tokens (as go-containerregistry's google keychain asks).
const gcpScope = "https://www.googleapis.com/auth/cloud-platform"

// retryNoIdentity is how long a provider that found no identity waits before it looks again.
const retryNoIdentity = time.Minute

// gcpSource uses Google's application default credentials: on GKE the metadata server (Workload Identity's
// service account, else the node's), else GOOGLE_APPLICATION_CREDENTIALS. The registry gets the access
// token as go-containerregistry's google helper sends it (user "_token").
type gcpSource struct {
	find func(ctx context.Context) (*googauth.Credentials, error)
	now  func() time.Time

	mu         sync.Mutex
	auth       authn.Authenticator
	lastFailed time.Time
}

func newGCP() *gcpSource {
	return &gcpSource{
		find: func(ctx context.Context) (*googauth.Credentials, error) {
			return googauth.FindDefaultCredentials(ctx, gcpScope)
		},
		now: time.Now,
	}
}

// Authenticator returns the token authenticator once default credentials are found. None found is no
// identity (images on gcr.io read anonymously, from another cloud), unless GOOGLE_APPLICATION_CREDENTIALS
// names a file: then it is an error. A token that cannot be had is an error of each request.
func (g *gcpSource) Authenticator(string) (authn.Authenticator, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.auth != nil {
		return g.auth, nil
	}
	if !g.lastFailed.IsZero() && g.now().Sub(g.lastFailed) < retryNoIdentity {
		return nil, nil
	}
	// The token source keeps this context for its requests: it must not be cancelled. Finding the
	// credentials is local, or one bounded probe of the metadata server, once per process.
	creds, err := g.find(context.Background())
	if err != nil {
		if f := os.Getenv("GOOGLE_APPLICATION_CREDENTIALS"); f != "" {
			return nil, fmt.Errorf("GOOGLE_APPLICATION_CREDENTIALS=%s: %w", f, err)
		}
		g.lastFailed = g.now()
		return nil, nil
	}
	g.auth = wrapErrors(google.NewTokenSourceAuthenticator(oauth2.ReuseTokenSource(nil, creds.TokenSource)),
		"getting an access token for the pod's Google service account (Workload Identity or the node's, through the metadata server)")
	return g.auth, nil
}

// wrapErrors prefixes an authenticator's errors with what it was doing.
func wrapErrors(a authn.Authenticator, doing string) authn.Authenticator { return errAuth{a, doing} }

type errAuth struct {
	authn.Authenticator
	doing string
}

func (e errAuth) Authorization() (*authn.AuthConfig, error) {
	c, err := e.Authenticator.Authorization()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.doing, err)
	}
	return c, nil
}
