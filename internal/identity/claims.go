package identity

import (
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
)

// Claim is one Fulcio certificate extension that a policy can match.
type Claim struct {
	// Name is the claim's name in the API (CertificateClaims) and in sigstore-go's certificate.Extensions.
	Name string
	// OID is the extension's object identifier.
	OID string
	ext func(*certificate.Extensions) *string
	api func(*sigwatchv1alpha1.CertificateClaims) *string
}

// All are the current Fulcio claims (OIDs 1.3.6.1.4.1.57264.1.9 to .22), in OID order.
var All = []*Claim{
	{"buildSignerURI", "1.3.6.1.4.1.57264.1.9",
		func(e *certificate.Extensions) *string { return &e.BuildSignerURI },
		func(c *sigwatchv1alpha1.CertificateClaims) *string { return &c.BuildSignerURI }},
	{"buildSignerDigest", "1.3.6.1.4.1.57264.1.10",
		func(e *certificate.Extensions) *string { return &e.BuildSignerDigest },
		func(c *sigwatchv1alpha1.CertificateClaims) *string { return &c.BuildSignerDigest }},
	{"runnerEnvironment", "1.3.6.1.4.1.57264.1.11",
		func(e *certificate.Extensions) *string { return &e.RunnerEnvironment },
		func(c *sigwatchv1alpha1.CertificateClaims) *string { return &c.RunnerEnvironment }},
	{"sourceRepositoryURI", "1.3.6.1.4.1.57264.1.12",
		func(e *certificate.Extensions) *string { return &e.SourceRepositoryURI },
		func(c *sigwatchv1alpha1.CertificateClaims) *string { return &c.SourceRepositoryURI }},
	{"sourceRepositoryDigest", "1.3.6.1.4.1.57264.1.13",
		func(e *certificate.Extensions) *string { return &e.SourceRepositoryDigest },
		func(c *sigwatchv1alpha1.CertificateClaims) *string { return &c.SourceRepositoryDigest }},
	{"sourceRepositoryRef", "1.3.6.1.4.1.57264.1.14",
		func(e *certificate.Extensions) *string { return &e.SourceRepositoryRef },
		func(c *sigwatchv1alpha1.CertificateClaims) *string { return &c.SourceRepositoryRef }},
	{"sourceRepositoryIdentifier", "1.3.6.1.4.1.57264.1.15",
		func(e *certificate.Extensions) *string { return &e.SourceRepositoryIdentifier },
		func(c *sigwatchv1alpha1.CertificateClaims) *string { return &c.SourceRepositoryIdentifier }},
	{"sourceRepositoryOwnerURI", "1.3.6.1.4.1.57264.1.16",
		func(e *certificate.Extensions) *string { return &e.SourceRepositoryOwnerURI },
		func(c *sigwatchv1alpha1.CertificateClaims) *string { return &c.SourceRepositoryOwnerURI }},
	{"sourceRepositoryOwnerIdentifier", "1.3.6.1.4.1.57264.1.17",
		func(e *certificate.Extensions) *string { return &e.SourceRepositoryOwnerIdentifier },
		func(c *sigwatchv1alpha1.CertificateClaims) *string { return &c.SourceRepositoryOwnerIdentifier }},
	{"buildConfigURI", "1.3.6.1.4.1.57264.1.18",
		func(e *certificate.Extensions) *string { return &e.BuildConfigURI },
		func(c *sigwatchv1alpha1.CertificateClaims) *string { return &c.BuildConfigURI }},
	{"buildConfigDigest", "1.3.6.1.4.1.57264.1.19",
		func(e *certificate.Extensions) *string { return &e.BuildConfigDigest },
		func(c *sigwatchv1alpha1.CertificateClaims) *string { return &c.BuildConfigDigest }},
	{"buildTrigger", "1.3.6.1.4.1.57264.1.20",
		func(e *certificate.Extensions) *string { return &e.BuildTrigger },
		func(c *sigwatchv1alpha1.CertificateClaims) *string { return &c.BuildTrigger }},
	{"runInvocationURI", "1.3.6.1.4.1.57264.1.21",
		func(e *certificate.Extensions) *string { return &e.RunInvocationURI },
		func(c *sigwatchv1alpha1.CertificateClaims) *string { return &c.RunInvocationURI }},
	{"sourceRepositoryVisibilityAtSigning", "1.3.6.1.4.1.57264.1.22",
		func(e *certificate.Extensions) *string { return &e.SourceRepositoryVisibilityAtSigning },
		func(c *sigwatchv1alpha1.CertificateClaims) *string { return &c.SourceRepositoryVisibilityAtSigning }},
}

// The deprecated GitHub claims, which an identity's githubWorkflow matches.
var (
	githubTrigger = Claim{Name: "githubWorkflow.trigger", OID: "1.3.6.1.4.1.57264.1.2",
		ext: func(e *certificate.Extensions) *string { return &e.GithubWorkflowTrigger }}
	githubSHA = Claim{Name: "githubWorkflow.sha", OID: "1.3.6.1.4.1.57264.1.3",
		ext: func(e *certificate.Extensions) *string { return &e.GithubWorkflowSHA }}
	githubName = Claim{Name: "githubWorkflow.name", OID: "1.3.6.1.4.1.57264.1.4",
		ext: func(e *certificate.Extensions) *string { return &e.GithubWorkflowName }}
	githubRepository = Claim{Name: "githubWorkflow.repository", OID: "1.3.6.1.4.1.57264.1.5",
		ext: func(e *certificate.Extensions) *string { return &e.GithubWorkflowRepository }}
	githubRef = Claim{Name: "githubWorkflow.ref", OID: "1.3.6.1.4.1.57264.1.6",
		ext: func(e *certificate.Extensions) *string { return &e.GithubWorkflowRef }}
)

// API returns the current claims of c in the API's form, each passed through cut (which bounds and
// cleans a value for display); nil when there is none.
func (c Claims) API(cut func(string) string) *sigwatchv1alpha1.CertificateClaims {
	var out sigwatchv1alpha1.CertificateClaims
	found := false
	for _, cl := range All {
		if v := *cl.ext(&c.Extensions); v != "" {
			*cl.api(&out) = cut(v)
			found = true
		}
	}
	if !found {
		return nil
	}
	return &out
}

// Map returns a copy of c with f applied to every claim set; nil for nil.
func Map(c *sigwatchv1alpha1.CertificateClaims, f func(string) string) *sigwatchv1alpha1.CertificateClaims {
	if c == nil {
		return nil
	}
	out := *c
	for _, cl := range All {
		if v := cl.api(&out); *v != "" {
			*v = f(*v)
		}
	}
	return &out
}

// FromAPI returns the claims that a status or a report shows of a certificate (its subject, issuer and
// current claims in the API's form) as Claims, for matching: what a SignatureRevocation matches on, in
// the controller and in `sigwatch report` alike.
func FromAPI(subject, issuer string, claims *sigwatchv1alpha1.CertificateClaims) Claims {
	out := Claims{Subject: subject}
	out.Issuer = issuer
	if claims != nil {
		for _, cl := range All {
			*cl.ext(&out.Extensions) = *cl.api(claims)
		}
	}
	return out
}
