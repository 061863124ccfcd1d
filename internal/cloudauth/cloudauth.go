// Package cloudauth gives the manager's own cloud identity to the cloud registries: ECR (IRSA, EKS Pod
// Identity, the node role), GCR and Artifact Registry (Workload Identity, the node service account, through
// the metadata server), ACR (workload identity, managed identity). A registry host gets the credentials of
// at most one cloud, and only when it is that cloud's own registry host (or a host the operator named for
// it): a cloud token is never sent to another host.
//
// Only cmd/sigwatch imports this package: it carries the AWS and Azure SDKs, which nothing else needs.
package cloudauth

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"golang.org/x/net/publicsuffix"

	"github.com/sigwatch/sigwatch/internal/registry"
)

// Provider is a cloud whose registry credentials the manager can use.
type Provider string

// The providers.
const (
	GCP   Provider = "gcp"
	AWS   Provider = "aws"
	Azure Provider = "azure"
)

// AllProviders are the providers in the order their flag lists them.
var AllProviders = []Provider{GCP, AWS, Azure}

// ParseProviders parses a comma-separated list of providers; "none" alone is none.
func ParseProviders(s string) ([]Provider, error) {
	if strings.TrimSpace(s) == "none" {
		return nil, nil
	}
	var out []Provider
	for _, f := range strings.Split(s, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		switch {
		case f == "":
		case slices.Contains(AllProviders, Provider(f)):
			if !slices.Contains(out, Provider(f)) {
				out = append(out, Provider(f))
			}
		default:
			return nil, fmt.Errorf("unknown cloud provider %q in %q (want a list of gcp, aws and azure, or none)", f, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%q: name the providers (gcp, aws, azure) or none", s)
	}
	return out, nil
}

// Rule sends a provider's credentials to the registry hosts matching Pattern, besides that provider's own
// hosts: a registry mirror or private endpoint under another name.
type Rule struct {
	Provider Provider
	// Pattern is a host or host:port pattern, '*' matching one DNS label or a port.
	Pattern string
}

// ParseRule parses PROVIDER=PATTERN.
func ParseRule(s string) (Rule, error) {
	p, pattern, ok := strings.Cut(s, "=")
	p, pattern = strings.ToLower(strings.TrimSpace(p)), strings.TrimSpace(pattern)
	if !ok || pattern == "" {
		return Rule{}, fmt.Errorf("%q: want PROVIDER=HOSTPATTERN, for example gcp=registry.example.com", s)
	}
	if !slices.Contains(AllProviders, Provider(p)) {
		return Rule{}, fmt.Errorf("%q: unknown cloud provider %q (want gcp, aws or azure)", s, p)
	}
	if pattern == "*" || strings.Trim(pattern, "*.:") == "" {
		return Rule{}, fmt.Errorf("%q: the pattern must name a host, not match every host", s)
	}
	if strings.ContainsAny(pattern, "/@ ") {
		return Rule{}, fmt.Errorf("%q: the pattern is a host or host:port, without scheme, path or user", s)
	}
	if !isASCII(pattern) {
		return Rule{}, fmt.Errorf("%q: write the host in ASCII (its punycode form)", s)
	}
	if err := namesOneDomain(pattern); err != nil {
		return Rule{}, fmt.Errorf("%q: %w", s, err)
	}
	return Rule{Provider: Provider(p), Pattern: pattern}, nil
}

// namesOneDomain refuses a pattern whose literal end is a public suffix (*.com, *.co.uk): a cloud token
// would go to every host under it. IP addresses are taken as they are.
func namesOneDomain(pattern string) error {
	host := pattern
	if h, _, err := net.SplitHostPort(pattern); err == nil {
		host = h
	}
	if net.ParseIP(host) != nil || !strings.Contains(host, ".") && !strings.Contains(host, "*") {
		return nil // an IP address, or a single-label name such as localhost
	}
	labels := strings.Split(strings.ToLower(host), ".")
	i := len(labels)
	for i > 0 && !strings.Contains(labels[i-1], "*") {
		i--
	}
	literal := strings.Join(labels[i:], ".")
	if _, err := publicsuffix.EffectiveTLDPlusOne(literal); err != nil || literal == "" {
		return fmt.Errorf("the pattern must end in a domain of its own, not a public suffix (%q)", literal)
	}
	return nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// The cloud registries' own hosts. ECR's is the expression of amazon-ecr-credential-helper (private ECR
// in every partition, FIPS and dual-stack endpoints); ECR Public (public.ecr.aws) is read anonymously.
var (
	ecrHost    = regexp.MustCompile(`^(\d{12})\.dkr[.-]ecr(-fips)?\.([a-zA-Z0-9][a-zA-Z0-9-_]*)\.(amazonaws\.com(\.cn)?|sc2s\.sgov\.gov|c2s\.ic\.gov|cloud\.adc-e\.uk|csp\.hci\.ic\.gov|on\.(amazonwebservices\.com\.cn|aws))$`)
	gcpHosts   = registry.NewHostPatterns("gcr.io", "*.gcr.io", "*.pkg.dev")
	azureHosts = registry.NewHostPatterns("*.azurecr.io", "*.azurecr.cn", "*.azurecr.us")
)

// ownedBy is the provider whose own registry host host is ("" for none).
func ownedBy(host string) Provider {
	if !isASCII(host) {
		return "" // the host dialled would be its IDNA form, not the one matched
	}
	host = strings.ToLower(host)
	switch {
	case gcpHosts.Match(host):
		return GCP
	case ecrHost.MatchString(host):
		return AWS
	case azureHosts.Match(host):
		return Azure
	}
	return ""
}

// Options configure a Keychain.
type Options struct {
	// Providers are the clouds whose credentials are used (none: the Keychain is anonymous).
	Providers []Provider
	// Registries are more hosts for an enabled provider. A rule for a provider that is not enabled is
	// an error.
	Registries []Rule
	// Insecure are the registry host patterns reached over plain HTTP (the registry client's); ACR's token
	// exchange follows them.
	Insecure []string
	// Warn is told when a provider has no identity here and a host of it is read anonymously (nil: not
	// told). It is called once per provider until an identity appears.
	Warn func(p Provider, host string, err error)

	// GCP, AWS and Azure replace the providers (tests); nil: the real ones.
	GCP, AWS, Azure Source
}

// Source gets a provider's registry credentials for a host.
type Source interface {
	// Authenticator returns the credentials for host, nil when this provider has no identity here (the
	// host is then read anonymously), or an error when it has one but it failed.
	Authenticator(host string) (authn.Authenticator, error)
}

// Keychain resolves cloud credentials by registry host. It is safe for concurrent use.
type Keychain struct {
	enabled map[Provider]Source
	extra   []rule
	warn    func(Provider, string, error)

	mu     sync.Mutex
	warned map[Provider]bool
}

type rule struct {
	provider Provider
	hosts    registry.HostPatterns
}

// New returns the keychain of o.
func New(o Options) (*Keychain, error) {
	k := &Keychain{enabled: map[Provider]Source{}, warn: o.Warn, warned: map[Provider]bool{}}
	defaults := map[Provider]Source{GCP: o.GCP, AWS: o.AWS, Azure: o.Azure}
	for _, p := range o.Providers {
		s := defaults[p]
		if s == nil {
			switch p {
			case GCP:
				s = newGCP()
			case AWS:
				s = newAWS()
			case Azure:
				s = newAzure(registry.NewHostPatterns(o.Insecure...))
			default:
				return nil, fmt.Errorf("unknown cloud provider %q", p)
			}
		}
		k.enabled[p] = s
	}
	for _, r := range o.Registries {
		if _, ok := k.enabled[r.Provider]; !ok {
			return nil, fmt.Errorf("cloud registry %s=%s: provider %s is not enabled", r.Provider, r.Pattern, r.Provider)
		}
		k.extra = append(k.extra, rule{provider: r.Provider, hosts: registry.NewHostPatterns(r.Pattern)})
	}
	return k, nil
}

// ProviderFor is the provider whose credentials host gets: its own cloud's when that provider is
// enabled, else the first rule's that matches it; false for none.
func (k *Keychain) ProviderFor(host string) (Provider, bool) {
	if !isASCII(host) {
		return "", false
	}
	if p := ownedBy(host); p != "" {
		if _, ok := k.enabled[p]; !ok {
			return "", false
		}
		return p, true
	}
	for _, r := range k.extra {
		if r.hosts.Match(host) {
			return r.provider, true
		}
	}
	return "", false
}

// Resolve returns the cloud credentials of the resource's registry host: anonymous for a host of no
// enabled cloud, and for a cloud host when that cloud has no identity here (public images on gcr.io read
// from another cloud); an error when the identity exists but its credentials cannot be had.
func (k *Keychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	host := r.RegistryStr()
	p, ok := k.ProviderFor(host)
	if !ok {
		return authn.Anonymous, nil
	}
	auth, err := k.enabled[p].Authenticator(host)
	if err != nil {
		return nil, fmt.Errorf("%s credentials for %s: %w", p, host, err)
	}
	if auth == nil {
		k.noIdentity(p, host)
		return authn.Anonymous, nil
	}
	k.mu.Lock()
	delete(k.warned, p)
	k.mu.Unlock()
	return auth, nil
}

func (k *Keychain) noIdentity(p Provider, host string) {
	k.mu.Lock()
	first := !k.warned[p]
	k.warned[p] = true
	k.mu.Unlock()
	if first && k.warn != nil {
		k.warn(p, host, fmt.Errorf("no %s identity found: %s is read anonymously", p, host))
	}
}
