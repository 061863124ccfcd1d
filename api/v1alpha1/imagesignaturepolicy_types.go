package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ImageSignaturePolicySpec says which image repositories must be signed, by which identities or keys,
// and with which attestations.
type ImageSignaturePolicySpec struct {
	// images are glob patterns over the normalized image repository (docker.io/library/ is added where
	// Docker adds it; no tag, no digest). `*` matches within one path segment and `**` across segments:
	// `ghcr.io/yourorg/**`, `docker.io/library/nginx`.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	Images []ImagePattern `json:"images,omitempty"`

	// namespaceSelector limits the policy to the namespaces whose labels match. Absent, the policy applies
	// in every namespace. A selector that cannot be evaluated makes the policy InvalidPolicy, and the
	// images its globs match are then Unknown (PolicyNotReady) in every namespace, never left unchecked.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])",message="namespaceSelector: operator must be In, NotIn, Exists or DoesNotExist"
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, !(e.operator in ['In', 'NotIn']) || (has(e.values) && size(e.values) > 0))",message="namespaceSelector: In and NotIn need at least one value"
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, !(e.operator in ['Exists', 'DoesNotExist']) || !has(e.values) || size(e.values) == 0)",message="namespaceSelector: Exists and DoesNotExist take no values"
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// authorities are the signers the policy trusts. A signature that satisfies any one authority
	// satisfies the policy.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	Authorities []Authority `json:"authorities,omitempty"`

	// attestations must all be present, signed by one of the authorities, with all their conditions
	// true.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	Attestations []Attestation `json:"attestations,omitempty"`

	// trustedRoot is the Sigstore trust root (Fulcio, Rekor, TSA and CT keys) for a private Sigstore or an
	// air-gapped cluster. Absent, the public-good Sigstore trust root is used.
	// +optional
	TrustedRoot *TrustedRootSource `json:"trustedRoot,omitzero"` //nolint:kubeapilinter // a pointer: absent and present are told apart in Go by nil, as everywhere in sigwatch

	// signatureRepository is the repository where signatures are stored when they are not stored beside
	// the image (what cosign's COSIGN_REPOSITORY does), for example `registry.example.com/signatures`.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^(\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9.-]+)(:[0-9]+)?(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)+$`
	SignatureRepository string `json:"signatureRepository,omitempty"`

	// reverifyInterval is how often the images the policy covers are verified again. At least 1m.
	// +optional
	// +kubebuilder:default="1h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m')",message="reverifyInterval must be at least 1m"
	ReverifyInterval *metav1.Duration `json:"reverifyInterval,omitempty"` //nolint:kubeapilinter // a duration string ("1h"), as Flux and Argo CD policies are written; CEL keeps it at least 1m

	// severity is how bad it is when an image fails the policy: critical, high (the default), medium or
	// low. It is carried into the metrics (label severity), PolicyReports and Events, so that alerts can
	// be routed by it.
	// +optional
	// +kubebuilder:default=high
	Severity PolicySeverity `json:"severity,omitempty"`

	// mode is Enforce (the default) or Audit. An Audit policy is judged and reported like any other
	// (status.policies, the Verified condition, PolicyReports, metrics with mode="Audit"), but its
	// failures do not make the SignedImage not Ready or Stalled, their Events are Normal, and the
	// shipped alert rules raise them at severity info: a way to try a policy out before it counts.
	// +optional
	// +kubebuilder:default=Enforce
	Mode PolicyMode `json:"mode,omitempty"`
}

// PolicySeverity is how bad a failure of the policy is.
// +kubebuilder:validation:Enum=critical;high;medium;low
type PolicySeverity string

const (
	// SeverityCritical: a failure pages someone.
	SeverityCritical PolicySeverity = "critical"
	// SeverityHigh: the default.
	SeverityHigh PolicySeverity = "high"
	// SeverityMedium is a failure to look at in working hours.
	SeverityMedium PolicySeverity = "medium"
	// SeverityLow is a failure to know about.
	SeverityLow PolicySeverity = "low"
)

// PolicyMode says whether a policy's failures count.
// +kubebuilder:validation:Enum=Enforce;Audit
type PolicyMode string

const (
	// PolicyModeEnforce: failures make the image not Ready and raise Warning Events and alerts at the
	// policy's severity.
	PolicyModeEnforce PolicyMode = "Enforce"
	// PolicyModeAudit: failures are reported, but the image stays Ready, Events are Normal and alerts are
	// info.
	PolicyModeAudit PolicyMode = "Audit"
)

// EffectiveSeverity is the policy's severity, high when unset.
func (s *ImageSignaturePolicySpec) EffectiveSeverity() PolicySeverity {
	if s.Severity == "" {
		return SeverityHigh
	}
	return s.Severity
}

// EffectiveMode is the policy's mode, Enforce when unset.
func (s *ImageSignaturePolicySpec) EffectiveMode() PolicyMode {
	if s.Mode == "" {
		return PolicyModeEnforce
	}
	return s.Mode
}

// ImagePattern is a glob over a normalized image repository, without tag or digest. Its registry host is
// normalized as the running images' are (lower case, no default port 443, no trailing dot, docker.io for
// Docker Hub's other names); an IPv6 host is written in brackets, `[::1]:5000/team/**`. Repository
// paths are lower case.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=255
// +kubebuilder:validation:XValidation:rule="self.matches('^((\\\\[[0-9a-fA-F:.]+\\\\]|[^\\\\s@:/]+)(:[0-9*?]+)?/)?[^\\\\s@:]+$')",message="an image pattern is a glob over a repository, without tag or digest (ghcr.io/yourorg/**)"
// +kubebuilder:validation:XValidation:rule="self.matches('^(([^/]*[.:][^/]*|localhost|\\\\*[^/]*)/)?[^A-Z]*$')",message="an image pattern's repository path is lower case, as repository paths are (the host may be in any case)"
type ImagePattern string

// Authority is one trusted signer: exactly one of keyless (identities) or key (a public key).
// +kubebuilder:validation:XValidation:rule="(has(self.keyless)?1:0)+(has(self.key)?1:0)==1",message="exactly one of keyless or key must be set"
// +kubebuilder:validation:XValidation:rule="!has(self.transparencyLog) || self.transparencyLog.mode != 'Disabled' || has(self.key)",message="transparencyLog.mode Disabled is only allowed with key"
type Authority struct {
	// name identifies the authority in results; unique within the policy.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name,omitempty"`

	// keyless trusts Fulcio certificates issued to one of the listed identities.
	// +optional
	Keyless *KeylessAuthority `json:"keyless,omitzero"` //nolint:kubeapilinter // a pointer: absent and present are told apart in Go by nil, as everywhere in sigwatch

	// key trusts signatures made with one public key.
	// +optional
	Key *KeyAuthority `json:"key,omitempty"`

	// transparencyLog says whether a transparency log entry is required.
	// +optional
	TransparencyLog *TransparencyLogPolicy `json:"transparencyLog,omitempty"`

	// maxSignatureAge is how long a signature (or attestation) the authority accepts counts, from its
	// trusted signing time (the transparency log's or a timestamp authority's, never the signature's own
	// claim), for example `720h`: "re-sign, re-scan and redeploy at least every 30 days". When the newest
	// accepted signature of an image grows older, the image turns Verified=False (SignatureTooOld) at that
	// moment. A signature without a trusted signing time never counts. Absent, signatures do not age.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m')",message="maxSignatureAge must be at least 1m"
	MaxSignatureAge *metav1.Duration `json:"maxSignatureAge,omitempty"` //nolint:kubeapilinter // a duration string ("720h"), as reverifyInterval is written
}

// KeylessAuthority trusts certificates from the trust root's certificate authority issued to one of the
// identities.
type KeylessAuthority struct {
	// identities are the OIDC identities allowed to sign; any one suffices.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	Identities []Identity `json:"identities"` //nolint:kubeapilinter // each Identity has exactly one of issuer/issuerRegExp and of subject/subjectRegExp (CEL), so no one field is required
}

// Identity is an OIDC issuer and subject, as Fulcio writes them into a certificate: exactly one of
// issuer or issuerRegExp, and exactly one of subject or subjectRegExp. Regular expressions must match
// the whole value: sigwatch anchors them.
// +kubebuilder:validation:XValidation:rule="(has(self.issuer)?1:0)+(has(self.issuerRegExp)?1:0)==1",message="exactly one of issuer or issuerRegExp must be set"
// +kubebuilder:validation:XValidation:rule="(has(self.subject)?1:0)+(has(self.subjectRegExp)?1:0)==1",message="exactly one of subject or subjectRegExp must be set"
type Identity struct {
	// issuer is the exact OIDC issuer URL, for example `https://token.actions.githubusercontent.com`.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Issuer string `json:"issuer,omitempty"`

	// issuerRegExp is a regular expression (RE2) that the whole issuer must match.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	IssuerRegExp string `json:"issuerRegExp,omitempty"`

	// subject is the exact certificate subject (SAN), for example
	// `https://github.com/yourorg/yourrepo/.github/workflows/release.yaml@refs/heads/main`.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Subject string `json:"subject,omitempty"`

	// subjectRegExp is a regular expression (RE2) that the whole subject must match.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	SubjectRegExp string `json:"subjectRegExp,omitempty"`

	// githubWorkflow claims, compared exactly with the deprecated GitHub extensions of Fulcio
	// certificates (OIDs 1.3.6.1.4.1.57264.1.2 to .6). Only the fields set are compared. New policies use
	// claims, which every CI's certificates carry.
	// +optional
	GitHubWorkflow *GitHubWorkflowClaims `json:"githubWorkflow,omitempty"`

	// claims are Fulcio certificate claims that must each equal the certificate's exactly. Only the
	// fields set are compared, and a claim the certificate lacks does not match. The claims of a real
	// signature are in the status of its SignedImage (status.signatures[].claims) and in the output of
	// `sigwatch verify -o json`, in this same form: copy the ones to pin from there.
	// +optional
	Claims *CertificateClaims `json:"claims,omitzero"` //nolint:kubeapilinter // a pointer: absent and present are told apart in Go by nil, as everywhere in sigwatch

	// claimsRegExp are Fulcio certificate claims, each a regular expression (RE2) that the whole claim
	// must match (sigwatch anchors it), for example `sourceRepositoryRef: refs/tags/v.*`. A claim set in
	// both claims and claimsRegExp must satisfy both.
	// +optional
	ClaimsRegExp *CertificateClaims `json:"claimsRegExp,omitzero"` //nolint:kubeapilinter // a pointer: absent and present are told apart in Go by nil, as everywhere in sigwatch
}

// CertificateClaims are the claims Fulcio writes into the extensions of a certificate (OIDs
// 1.3.6.1.4.1.57264.1.9 to .22), named as sigstore-go's certificate.Extensions names them. What each one
// holds depends on the CI: docs/policies.md shows them for GitHub Actions, GitLab CI, Buildkite and
// CircleCI. For certificates older than these extensions, the deprecated GitHub ones (1.3.6.1.4.1.57264.1.2
// to .6) stand in for sourceRepositoryURI, sourceRepositoryDigest, sourceRepositoryRef and buildTrigger;
// a certificate whose deprecated and current claims disagree matches no identity.
// +kubebuilder:validation:MinProperties=1
type CertificateClaims struct {
	// buildSignerURI is what signed: for GitHub Actions the workflow file of the job at its ref, which
	// is a reusable workflow's when one was called, for example
	// `https://github.com/yourorg/workflows/.github/workflows/build.yaml@refs/tags/v1`; for GitLab CI the
	// pipeline configuration (OID 1.3.6.1.4.1.57264.1.9).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	BuildSignerURI string `json:"buildSignerURI,omitempty"`

	// buildSignerDigest is the commit of the build instructions that signed (OID 1.3.6.1.4.1.57264.1.10).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	BuildSignerDigest string `json:"buildSignerDigest,omitempty"`

	// runnerEnvironment is where the build ran: `github-hosted`, `gitlab-hosted`, `self-hosted`...
	// (OID 1.3.6.1.4.1.57264.1.11).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	RunnerEnvironment string `json:"runnerEnvironment,omitempty"`

	// sourceRepositoryURI is the repository that was built, for example `https://github.com/yourorg/yourrepo`
	// (OID 1.3.6.1.4.1.57264.1.12). A name can be taken again once deleted: pin
	// sourceRepositoryIdentifier too.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	SourceRepositoryURI string `json:"sourceRepositoryURI,omitempty"`

	// sourceRepositoryDigest is the commit that was built (OID 1.3.6.1.4.1.57264.1.13).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	SourceRepositoryDigest string `json:"sourceRepositoryDigest,omitempty"`

	// sourceRepositoryRef is the git ref that was built, for example `refs/heads/main` or `refs/tags/v1.2.0`
	// (OID 1.3.6.1.4.1.57264.1.14).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	SourceRepositoryRef string `json:"sourceRepositoryRef,omitempty"`

	// sourceRepositoryIdentifier is the CI's immutable ID of the repository, for example GitHub's
	// numeric repository ID (OID 1.3.6.1.4.1.57264.1.15). Unlike the name, it is not given to a repository
	// created again under a deleted one's name.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	SourceRepositoryIdentifier string `json:"sourceRepositoryIdentifier,omitempty"`

	// sourceRepositoryOwnerURI is the owner of the repository, for example `https://github.com/yourorg`
	// (OID 1.3.6.1.4.1.57264.1.16).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	SourceRepositoryOwnerURI string `json:"sourceRepositoryOwnerURI,omitempty"`

	// sourceRepositoryOwnerIdentifier is the CI's immutable ID of the owner (organisation, group or
	// user) (OID 1.3.6.1.4.1.57264.1.17). Unlike the name, it is not given to an organisation created again
	// under a deleted one's name.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	SourceRepositoryOwnerIdentifier string `json:"sourceRepositoryOwnerIdentifier,omitempty"`

	// buildConfigURI is the top-level build configuration: for GitHub Actions the workflow that ran,
	// which called the signer's reusable workflow if there was one (OID 1.3.6.1.4.1.57264.1.18).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	BuildConfigURI string `json:"buildConfigURI,omitempty"`

	// buildConfigDigest is the commit of the top-level build configuration (OID 1.3.6.1.4.1.57264.1.19).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	BuildConfigDigest string `json:"buildConfigDigest,omitempty"`

	// buildTrigger is the event that started the build, for example `push` (OID 1.3.6.1.4.1.57264.1.20).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	BuildTrigger string `json:"buildTrigger,omitempty"`

	// runInvocationURI is the run (job or build) that signed (OID 1.3.6.1.4.1.57264.1.21).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	RunInvocationURI string `json:"runInvocationURI,omitempty"`

	// sourceRepositoryVisibilityAtSigning is `public`, `private` or `internal`, as the repository was when
	// it was built (OID 1.3.6.1.4.1.57264.1.22).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	SourceRepositoryVisibilityAtSigning string `json:"sourceRepositoryVisibilityAtSigning,omitempty"`
}

// GitHubWorkflowClaims are the GitHub Actions claims that Fulcio copies into certificate extensions.
// +kubebuilder:validation:XValidation:rule="has(self.repository) || has(self.ref) || has(self.sha) || has(self.trigger) || has(self.name)",message="githubWorkflow needs at least one claim"
type GitHubWorkflowClaims struct {
	// repository is the `owner/name` of the repository that ran the workflow (OID 1.3.6.1.4.1.57264.1.5).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Repository string `json:"repository,omitempty"`

	// ref is the git ref the workflow ran on, for example `refs/heads/main` (OID 1.3.6.1.4.1.57264.1.6).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Ref string `json:"ref,omitempty"`

	// sha is the commit the workflow ran on (OID 1.3.6.1.4.1.57264.1.3).
	// +optional
	// +kubebuilder:validation:Pattern=`^[a-f0-9]{40}([a-f0-9]{24})?$`
	// +kubebuilder:validation:MinLength=40
	// +kubebuilder:validation:MaxLength=64
	SHA string `json:"sha,omitempty"`

	// trigger is the event that started the workflow, for example `push` (OID 1.3.6.1.4.1.57264.1.2).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Trigger string `json:"trigger,omitempty"`

	// name is the workflow's name (OID 1.3.6.1.4.1.57264.1.4).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Name string `json:"name,omitempty"`
}

// KeyAuthority trusts one public key: exactly one of publicKey (inline PEM) or secretRef.
// +kubebuilder:validation:XValidation:rule="(has(self.publicKey)?1:0)+(has(self.secretRef)?1:0)==1",message="exactly one of publicKey or secretRef must be set"
type KeyAuthority struct {
	// publicKey is a PEM public key: ECDSA P-256 or P-384, RSA of at least 2048 bits, or Ed25519.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=16384
	// +kubebuilder:validation:XValidation:rule="self.contains('-----BEGIN PUBLIC KEY-----') || self.contains('-----BEGIN RSA PUBLIC KEY-----')",message="publicKey must be a PEM public key (-----BEGIN PUBLIC KEY-----)"
	PublicKey string `json:"publicKey,omitempty"`

	// secretRef names a Secret key that holds the PEM public key.
	// +optional
	SecretRef *SecretKeyReference `json:"secretRef,omitzero"` //nolint:kubeapilinter // a pointer: absent and present are told apart in Go by nil, as everywhere in sigwatch
}

// SecretKeyReference names one key of a Secret.
type SecretKeyReference struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name,omitempty"`

	// namespace of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`

	// key in the Secret's data.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key,omitempty"`
}

// TransparencyLogMode says whether a transparency log entry is required.
// +kubebuilder:validation:Enum=Required;Optional;Disabled
type TransparencyLogMode string

const (
	// TransparencyLogRequired: the signature must have a verified transparency log entry.
	TransparencyLogRequired TransparencyLogMode = "Required"
	// TransparencyLogOptional: a log entry is verified when present, not required.
	TransparencyLogOptional TransparencyLogMode = "Optional"
	// TransparencyLogDisabled: log entries are ignored. Only with key, whose trust does not rest on time.
	TransparencyLogDisabled TransparencyLogMode = "Disabled"
)

// TransparencyLogPolicy configures the transparency log check of an authority.
// +kubebuilder:validation:XValidation:rule="!has(self.online) || self.online == 'Off' || !has(self.mode) || self.mode != 'Disabled'",message="online needs a transparency log: with mode Disabled it can only be Off"
type TransparencyLogPolicy struct {
	// mode is Required (the default), Optional or Disabled (only with key).
	// +optional
	// +kubebuilder:default=Required
	Mode TransparencyLogMode `json:"mode,omitempty"`

	// online says what sigwatch does, on every verification, with the live log of each accepted
	// signature's entry: read its current signed checkpoint, prove the entry is in that tree, and prove
	// the tree consistent with the last checkpoint sigwatch verified of the log (the InTransparencyLog
	// condition says how it went). Monitor (the default) reports and never changes the verdict; Require
	// also makes the image Verified=False when its entry is not in the log or the log is inconsistent,
	// and Unknown when the log cannot be reached; Off checks the bundle's proof offline only.
	// +optional
	Online OnlineLogCheck `json:"online,omitempty"`
}

// OnlineLogCheck says what the live transparency log check does to the verdict.
// +kubebuilder:validation:Enum=Off;Monitor;Require
type OnlineLogCheck string

const (
	// OnlineLogOff: no live check; the bundle's inclusion proof or promise is verified offline.
	OnlineLogOff OnlineLogCheck = "Off"
	// OnlineLogMonitor: the live check is reported (InTransparencyLog, Events, metrics); the verdict is
	// the offline one.
	OnlineLogMonitor OnlineLogCheck = "Monitor"
	// OnlineLogRequire: a signature counts only when its entry is proven in the live, consistent log.
	OnlineLogRequire OnlineLogCheck = "Require"
)

// Attestation is an in-toto attestation that must be present and signed by one of the authorities.
type Attestation struct {
	// name identifies the attestation in results; unique within the policy.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name,omitempty"`

	// predicateType is the in-toto predicate type URI, for example `https://slsa.dev/provenance/v1`.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="isURL(self)",message="predicateType must be a URI"
	PredicateType string `json:"predicateType,omitempty"`

	// conditions are CEL expressions over `predicate` that must all be true, for example
	// `predicate.runDetails.builder.id == "https://github.com/actions/runner"`.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=4096
	// +listType=atomic
	Conditions []string `json:"conditions,omitempty"` //nolint:kubeapilinter // CEL conditions on the predicate, not metav1.Conditions; renaming would break every policy
}

// TrustedRootSource says where a Sigstore trusted_root.json comes from: exactly one of configMapRef (the
// file itself) or tuf (a TUF repository that publishes it, as the public-good Sigstore does).
// +kubebuilder:validation:XValidation:rule="(has(self.configMapRef)?1:0)+(has(self.tuf)?1:0)==1",message="exactly one of configMapRef or tuf must be set"
type TrustedRootSource struct {
	// configMapRef names the ConfigMap key that holds the trusted_root.json.
	// +optional
	ConfigMapRef ConfigMapKeyReference `json:"configMapRef,omitzero"` //nolint:kubeapilinter // one of configMapRef or tuf (CEL); a value, as it was when it was the only source, omitted when zero

	// tuf is a TUF repository that publishes the trusted_root.json of a private Sigstore (the target
	// `trusted_root.json`, as sigstore-go's TUF client reads it). sigwatch refreshes it hourly, follows
	// the repository's root rotations, keeps it on disk, and refuses metadata that does not verify (an
	// expired or tampered timestamp, snapshot or targets). When the repository cannot be read or refuses
	// to verify, the root it last delivered stays in use, reported as a fallback (the policy's Ready
	// reason TrustRootFallback, with why), up to the manager's --max-trust-root-age.
	// +optional
	TUF *TUFSource `json:"tuf,omitzero"` //nolint:kubeapilinter // a pointer: absent and present are told apart in Go by nil, as everywhere in sigwatch
}

// TUFSource is a TUF repository and the root.json it is first trusted with.
type TUFSource struct {
	// mirror is the repository's URL: its metadata is at MIRROR/N.root.json, MIRROR/timestamp.json and
	// so on, its targets under MIRROR/targets/.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (self.startsWith('https://') || self.startsWith('http://'))",message="mirror must be an http(s) URL"
	Mirror string `json:"mirror,omitempty"`

	// rootRef names the ConfigMap key that holds the repository's initial root.json, distributed out of
	// band. Later roots are followed through the repository's own rotations, each signed by the one
	// before.
	// +required
	RootRef TUFRootReference `json:"rootRef,omitzero"`
}

// TUFRootReference names the ConfigMap key of a TUF root.json.
type TUFRootReference struct {
	// name of the ConfigMap.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name,omitempty"`

	// namespace of the ConfigMap.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`

	// key in the ConfigMap's data; `root.json` by default.
	// +optional
	// +kubebuilder:default="root.json"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key,omitempty"`
}

// ConfigMapKeyReference names one key of a ConfigMap.
type ConfigMapKeyReference struct {
	// name of the ConfigMap.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name,omitempty"`

	// namespace of the ConfigMap.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`

	// key in the ConfigMap's data; `trusted_root.json` by default.
	// +optional
	// +kubebuilder:default="trusted_root.json"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key,omitempty"`
}

// ImageSignaturePolicyStatus is the observed state of an ImageSignaturePolicy.
type ImageSignaturePolicyStatus struct {
	// conditions are Ready (the policy compiled and its trust root and keys loaded) and Stalled (the
	// policy cannot work as written).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the generation of the spec that the status describes.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// matchedImages counts the SignedImages the policy covers.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:default=0
	MatchedImages int32 `json:"matchedImages"` //nolint:kubeapilinter // a count: 0 is a value, always written

	// verifiedImages counts the covered SignedImages that the policy verified.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:default=0
	VerifiedImages int32 `json:"verifiedImages"` //nolint:kubeapilinter // a count: 0 is a value, always written

	// failedImages counts the covered SignedImages that failed the policy.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:default=0
	FailedImages int32 `json:"failedImages"` //nolint:kubeapilinter // a count: 0 is a value, always written

	// unknownImages counts the covered SignedImages whose verdict under the policy is unknown.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:default=0
	UnknownImages int32 `json:"unknownImages"` //nolint:kubeapilinter // a count: 0 is a value, always written

	// exemptImages counts the covered SignedImages that an ImageSignatureExemption excludes from the
	// policy.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:default=0
	ExemptImages int32 `json:"exemptImages"` //nolint:kubeapilinter // a count: 0 is a value, always written
}

// ImageSignaturePolicy says which image repositories must be signed by which identities or keys, with
// which attestations. sigwatch checks the images that pods run against it, continuously.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=isp,categories=sigwatch
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Matched",type=integer,JSONPath=`.status.matchedImages`
// +kubebuilder:printcolumn:name="Verified",type=integer,JSONPath=`.status.verifiedImages`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.failedImages`
// +kubebuilder:printcolumn:name="Unknown",type=integer,JSONPath=`.status.unknownImages`,priority=1
// +kubebuilder:printcolumn:name="Exempt",type=integer,JSONPath=`.status.exemptImages`,priority=1
// +kubebuilder:printcolumn:name="Severity",type=string,JSONPath=`.spec.severity`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ImageSignaturePolicy struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired policy.
	// +required
	Spec ImageSignaturePolicySpec `json:"spec,omitzero"`

	// status is the observed state of the policy.
	// +optional
	Status ImageSignaturePolicyStatus `json:"status,omitzero"` //nolint:kubeapilinter // a value, as in every kubebuilder API; written by the controller only
}

// ImageSignaturePolicyList is a list of ImageSignaturePolicy.
// +kubebuilder:object:root=true
type ImageSignaturePolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the ImageSignaturePolicies.
	Items []ImageSignaturePolicy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ImageSignaturePolicy{}, &ImageSignaturePolicyList{})
}
