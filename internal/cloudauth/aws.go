package cloudauth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-containerregistry/pkg/authn"
	"golang.org/x/sync/singleflight"
)

// cloudCallTimeout bounds one call to a cloud's token API.
const cloudCallTimeout = 30 * time.Second

// awsSource gets ECR authorization tokens with the AWS SDK's default credential chain: IRSA (a web
// identity token), EKS Pod Identity (the container credentials endpoint), environment or profile, the
// node role (IMDS). The ECR API endpoint is the SDK's: AWS_ENDPOINT_URL_ECR (or AWS_ENDPOINT_URL) replaces
// it. A token is good for every registry the identity may read in its region, for 12 hours: it is reused
// until 30 minutes before it expires.
type awsSource struct {
	// getToken calls ECR's GetAuthorizationToken in region (FIPS endpoint when fips).
	getToken func(ctx context.Context, region string, fips bool) (user, pass string, expires time.Time, err error)
	now      func() time.Time

	sf     singleflight.Group
	mu     sync.Mutex
	tokens map[string]awsToken
	failed failures
}

// retryFailure is how long a token that could not be had is not asked for again: the verifications in
// between fail at once with the same error rather than each waiting for the cloud's API.
const retryFailure = 30 * time.Second

// failures remembers the last error per key (guarded by its owner's mutex).
type failures map[string]failure

type failure struct {
	err error
	at  time.Time
}

func (f *failures) recent(key string, now time.Time) error {
	if e, ok := (*f)[key]; ok && now.Sub(e.at) < retryFailure {
		return e.err
	}
	return nil
}

func (f *failures) set(key string, err error, now time.Time) {
	if *f == nil {
		*f = failures{}
	}
	if err == nil {
		delete(*f, key)
		return
	}
	(*f)[key] = failure{err: err, at: now}
}

type awsToken struct {
	user, pass string
	expires    time.Time
}

// awsRefreshBefore is how long before it expires a token is replaced.
const awsRefreshBefore = 30 * time.Minute

func newAWS() *awsSource {
	return &awsSource{getToken: ecrToken, now: time.Now, tokens: map[string]awsToken{}}
}

// Authenticator returns credentials fetched when a request needs them: ECR is never read anonymously,
// so an identity is always assumed, and its absence is the error of the request.
func (a *awsSource) Authenticator(host string) (authn.Authenticator, error) {
	region, fips := "", false
	if m := ecrHost.FindStringSubmatch(strings.ToLower(host)); m != nil {
		region, fips = m[3], m[2] != ""
	}
	return &awsAuth{src: a, region: region, fips: fips}, nil
}

type awsAuth struct {
	src    *awsSource
	region string
	fips   bool
}

func (a *awsAuth) Authorization() (*authn.AuthConfig, error) {
	t, err := a.src.token(a.region, a.fips)
	if err != nil {
		return nil, err
	}
	return &authn.AuthConfig{Username: t.user, Password: t.pass}, nil
}

func (a *awsSource) token(region string, fips bool) (awsToken, error) {
	key := fmt.Sprintf("%s|%t", region, fips)
	a.mu.Lock()
	t, ok := a.tokens[key]
	recent := a.failed.recent(key, a.now())
	a.mu.Unlock()
	if ok && a.now().Before(t.expires.Add(-awsRefreshBefore)) {
		return t, nil
	}
	if recent != nil {
		return awsToken{}, recent
	}
	v, err, _ := a.sf.Do(key, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.Background(), cloudCallTimeout)
		defer cancel()
		user, pass, expires, err := a.getToken(ctx, region, fips)
		if err != nil {
			err = fmt.Errorf("ECR GetAuthorizationToken with the pod's AWS identity (IRSA, EKS Pod Identity or the node role): %w", err)
			a.mu.Lock()
			a.failed.set(key, err, a.now())
			a.mu.Unlock()
			return awsToken{}, err
		}
		t := awsToken{user: user, pass: pass, expires: expires}
		a.mu.Lock()
		a.tokens[key] = t
		a.failed.set(key, nil, a.now())
		a.mu.Unlock()
		return t, nil
	})
	if err != nil {
		return awsToken{}, err
	}
	return v.(awsToken), nil
}

// maxECRToken bounds the authorization token ECR returns (a few kilobytes in practice).
const maxECRToken = 64 << 10

// ecrToken calls ECR's GetAuthorizationToken in region ("": the SDK's configured region).
func ecrToken(ctx context.Context, region string, fips bool) (string, string, time.Time, error) {
	var opts []func(*config.LoadOptions) error
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	if fips {
		opts = append(opts, config.WithUseFIPSEndpoint(aws.FIPSEndpointStateEnabled))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return "", "", time.Time{}, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return "", "", time.Time{}, errors.New("no AWS region: the host is not an ECR host that names one, and AWS_REGION is not set")
	}
	out, err := ecr.NewFromConfig(cfg).GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return "", "", time.Time{}, err
	}
	if len(out.AuthorizationData) == 0 || out.AuthorizationData[0].AuthorizationToken == nil {
		return "", "", time.Time{}, errors.New("ECR returned no authorization data")
	}
	d := out.AuthorizationData[0]
	if len(*d.AuthorizationToken) > maxECRToken {
		return "", "", time.Time{}, fmt.Errorf("ECR returned an authorization token of %d bytes (at most %d are accepted)", len(*d.AuthorizationToken), maxECRToken)
	}
	raw, err := base64.StdEncoding.DecodeString(*d.AuthorizationToken)
	if err != nil {
		return "", "", time.Time{}, fmt.Errorf("ECR's authorization token is not base64: %w", err)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok || user == "" || pass == "" {
		return "", "", time.Time{}, errors.New("ECR's authorization token is not user:password")
	}
	expires := time.Now().Add(time.Hour) // ECR always says; if it did not, ask again within the hour
	if d.ExpiresAt != nil {
		expires = *d.ExpiresAt
	}
	return user, pass, expires, nil
}
