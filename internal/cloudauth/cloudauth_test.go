package cloudauth

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// fakeSource records the hosts it was asked for.
type fakeSource struct {
	provider Provider
	asked    []string
	none     bool  // no identity here
	err      error // identity, but failing
}

func (f *fakeSource) Authenticator(host string) (authn.Authenticator, error) {
	f.asked = append(f.asked, host)
	if f.err != nil {
		return nil, f.err
	}
	if f.none {
		return nil, nil
	}
	return &authn.Bearer{Token: string(f.provider) + "-token"}, nil
}

func fakes() (*fakeSource, *fakeSource, *fakeSource) {
	return &fakeSource{provider: GCP}, &fakeSource{provider: AWS}, &fakeSource{provider: Azure}
}

// TestKeychainPerHost: which cloud's credentials each registry host gets. A cloud's token goes to that
// cloud's own registry hosts, and to the hosts an operator named for it, never to any other host:
// look-alike names, other registries and other clouds' hosts get nothing, and no source is even asked.
func TestKeychainPerHost(t *testing.T) {
	all := []Provider{GCP, AWS, Azure}
	for _, tc := range []struct {
		host      string
		providers []Provider
		rules     []Rule
		want      Provider // "" for anonymous
	}{
		// Google: Container Registry and Artifact Registry.
		{host: "gcr.io", providers: all, want: GCP},
		{host: "eu.gcr.io", providers: all, want: GCP},
		{host: "us-docker.pkg.dev", providers: all, want: GCP},
		{host: "EUROPE-WEST1-docker.pkg.dev", providers: all, want: GCP},
		{host: "gcr.io.attacker.example", providers: all},
		{host: "evilgcr.io", providers: all},
		{host: "pkg.dev", providers: all},
		{host: "us-docker.pkg.dev.attacker.example", providers: all},
		{host: "gcr.io:5000", providers: all},
		// AWS: private ECR in each partition, FIPS and dual-stack.
		{host: "123456789012.dkr.ecr.us-east-1.amazonaws.com", providers: all, want: AWS},
		{host: "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", providers: all, want: AWS},
		{host: "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", providers: all, want: AWS},
		{host: "123456789012.dkr-ecr.eu-west-1.on.aws", providers: all, want: AWS},
		{host: "123456789012.dkr.ecr.us-east-1.amazonaws.com.attacker.example", providers: all},
		{host: "attacker.example/123456789012.dkr.ecr.us-east-1.amazonaws.com", providers: all},
		{host: "12345.dkr.ecr.us-east-1.amazonaws.com", providers: all},
		{host: "public.ecr.aws", providers: all},
		{host: "s3.amazonaws.com", providers: all},
		// Azure: ACR in each cloud.
		{host: "myregistry.azurecr.io", providers: all, want: Azure},
		{host: "myregistry.azurecr.cn", providers: all, want: Azure},
		{host: "myregistry.azurecr.us", providers: all, want: Azure},
		{host: "azurecr.io", providers: all},
		{host: "myregistry.azurecr.io.attacker.example", providers: all},
		{host: "mcr.microsoft.com", providers: all},
		// A host that is not ASCII is dialled as its IDNA form, another name than the one that would
		// match after Unicode case folding ("İ" folds to "i"; punycode keeps it): never a cloud host.
		{host: "123456789012.dkr-ecr.us-east-1.on.amazonwebserv\u0130ces.com.cn", providers: all},
		{host: "G\u0130CR.io", providers: all},
		{host: "registry.example-\u0130nc.com", providers: all, rules: []Rule{{GCP, "registry.example-inc.com"}}},
		{host: "gcr.io.", providers: all},
		// Other registries never get a cloud token.
		{host: "index.docker.io", providers: all},
		{host: "ghcr.io", providers: all},
		{host: "quay.io", providers: all},
		{host: "registry.k8s.io", providers: all},
		{host: "127.0.0.1:5000", providers: all},
		// A provider that is not enabled gives nothing, even for its own hosts; the others still work.
		{host: "gcr.io", providers: []Provider{AWS, Azure}},
		{host: "123456789012.dkr.ecr.us-east-1.amazonaws.com", providers: []Provider{GCP}},
		{host: "123456789012.dkr.ecr.us-east-1.amazonaws.com", providers: []Provider{AWS}, want: AWS},
		{host: "myregistry.azurecr.io", providers: nil},
		// Operator-named hosts.
		{host: "mirror.example.com", providers: all, rules: []Rule{{GCP, "mirror.example.com"}}, want: GCP},
		{host: "127.0.0.1:5000", providers: all, rules: []Rule{{AWS, "127.0.0.1:*"}}, want: AWS},
		{host: "mirror.example.com.attacker.example", providers: all, rules: []Rule{{GCP, "mirror.example.com"}}},
		{host: "other.example.com", providers: all, rules: []Rule{{GCP, "mirror.example.com"}}},
		{host: "a.mirror.example.com", providers: all, rules: []Rule{{GCP, "*.mirror.example.com"}}, want: GCP},
		{host: "a.b.mirror.example.com", providers: all, rules: []Rule{{GCP, "*.mirror.example.com"}}},
		// A cloud's own host is that cloud's: a rule cannot send it another cloud's token.
		{host: "gcr.io", providers: all, rules: []Rule{{AWS, "gcr.io"}}, want: GCP},
		{host: "gcr.io", providers: []Provider{AWS}, rules: []Rule{{AWS, "gcr.io"}}},
	} {
		gcp, aws, azure := fakes()
		k, err := New(Options{Providers: tc.providers, Registries: tc.rules, GCP: gcp, AWS: aws, Azure: azure})
		if err != nil {
			t.Fatalf("%s: %v", tc.host, err)
		}
		p, ok := k.ProviderFor(tc.host)
		if ok != (tc.want != "") || p != tc.want {
			t.Errorf("%s (providers %v, rules %v): ProviderFor = %q, %t; want %q", tc.host, tc.providers, tc.rules, p, ok, tc.want)
		}
		reg, err := name.NewRegistry(tc.host, name.StrictValidation)
		if err != nil {
			continue // not a registry name go-containerregistry accepts (the path-like look-alike)
		}
		auth, err := k.Resolve(reg)
		if err != nil {
			t.Fatalf("%s: %v", tc.host, err)
		}
		asked := map[Provider]int{GCP: len(gcp.asked), AWS: len(aws.asked), Azure: len(azure.asked)}
		if tc.want == "" {
			if auth != authn.Anonymous {
				t.Errorf("%s: got %v, want anonymous", tc.host, auth)
			}
			if asked[GCP]+asked[AWS]+asked[Azure] != 0 {
				t.Errorf("%s: a cloud source was asked (%v)", tc.host, asked)
			}
			continue
		}
		cfg, err := auth.Authorization()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.RegistryToken != string(tc.want)+"-token" {
			t.Errorf("%s: got the credentials %q, want %s's", tc.host, cfg.RegistryToken, tc.want)
		}
		if asked[tc.want] != 1 || asked[GCP]+asked[AWS]+asked[Azure] != 1 {
			t.Errorf("%s: sources asked %v, want only %s once", tc.host, asked, tc.want)
		}
	}
}

// TestKeychainNoIdentityIsAnonymous: a cloud with no identity here (gcr.io's public images read from
// another cloud) reads anonymously and says so once; an identity that fails is an error naming the
// cloud and the host, never a silent anonymous read.
func TestKeychainNoIdentityIsAnonymous(t *testing.T) {
	gcp, aws, azure := fakes()
	gcp.none = true
	aws.err = errors.New("no EC2 IMDS role found")
	var warnings []string
	k, err := New(Options{Providers: AllProviders, GCP: gcp, AWS: aws, Azure: azure,
		Warn: func(p Provider, host string, err error) { warnings = append(warnings, err.Error()) }})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		auth, err := k.Resolve(name.MustParseReference("gcr.io/distroless/static:nonroot").Context())
		if err != nil || auth != authn.Anonymous {
			t.Fatalf("gcr.io without a Google identity: %v, %v; want anonymous", auth, err)
		}
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "gcr.io is read anonymously") {
		t.Errorf("warnings %q: want one that says gcr.io is read anonymously", warnings)
	}
	_, err = k.Resolve(name.MustParseReference("123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v1").Context())
	if err == nil || !strings.Contains(err.Error(), "aws credentials for 123456789012.dkr.ecr.us-east-1.amazonaws.com: no EC2 IMDS role found") {
		t.Errorf("a failing AWS identity: %v; want an error naming the provider and the host", err)
	}
}

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []Provider
		wantErr string
	}{
		{in: "gcp,aws,azure", want: []Provider{GCP, AWS, Azure}},
		{in: " AWS , gcp,aws", want: []Provider{AWS, GCP}},
		{in: "none"},
		{in: "", wantErr: "name the providers"},
		{in: "gcp,none", wantErr: `unknown cloud provider "none"`},
		{in: "gcp,oracle", wantErr: `unknown cloud provider "oracle"`},
	} {
		got, err := ParseProviders(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseProviders(%q) error %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || strings.Join(names(got), ",") != strings.Join(names(tc.want), ",") {
			t.Errorf("ParseProviders(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, wantErr string }{
		{in: "gcp=mirror.example.com"},
		{in: "aws=127.0.0.1:*"},
		{in: "gcp", wantErr: "want PROVIDER=HOSTPATTERN"},
		{in: "gcp=", wantErr: "want PROVIDER=HOSTPATTERN"},
		{in: "oracle=x.example", wantErr: "unknown cloud provider"},
		{in: "gcp=*", wantErr: "not match every host"},
		{in: "gcp=*.*", wantErr: "not match every host"},
		{in: "gcp=https://mirror.example.com", wantErr: "without scheme"},
		{in: "gcp=*.com", wantErr: "public suffix"},
		{in: "aws=*.co.uk", wantErr: "public suffix"},
		{in: "gcp=registry.*.com", wantErr: "public suffix"},
		{in: "gcp=*.example.com"},
		{in: "gcp=localhost:5000"},
		{in: "gcp=regi\u0130stry.example.com", wantErr: "ASCII"},
	} {
		_, err := ParseRule(tc.in)
		if (err != nil) != (tc.wantErr != "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("ParseRule(%q) error %v, want %q", tc.in, err, tc.wantErr)
		}
	}
	if _, err := New(Options{Providers: []Provider{AWS}, Registries: []Rule{{GCP, "mirror.example.com"}}}); err == nil ||
		!strings.Contains(err.Error(), "provider gcp is not enabled") {
		t.Errorf("a rule for a disabled provider: %v, want an error", err)
	}
}

func names(ps []Provider) []string {
	var out []string
	for _, p := range ps {
		out = append(out, string(p))
	}
	return out
}
