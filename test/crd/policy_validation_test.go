//go:build integration

package crd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/sigwatch/sigwatch/test/envtest"
)

const validKey = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEF3fy0XTNre1uunEPWC9JSIeSaVZl
njPo6YCiCYAhYllz9GhMSjgbKwjVg/hSpmaWMf11bA/aJODeMPg95PM1cQ==
-----END PUBLIC KEY-----`

// policy builds an ImageSignaturePolicy from a YAML spec.
func policy(t *testing.T, name, spec string) *unstructured.Unstructured {
	t.Helper()
	obj := map[string]any{}
	if err := yaml.Unmarshal([]byte(spec), &obj); err != nil {
		t.Fatalf("bad test spec: %v", err)
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "sigwatch.dev/v1alpha1",
		"kind":       "ImageSignaturePolicy",
		"metadata":   map[string]any{"name": name},
		"spec":       obj,
	}}
	return u
}

const keylessAuthority = `
  - name: ci
    keyless:
      identities:
        - issuer: https://token.actions.githubusercontent.com
          subject: https://github.com/yourorg/yourrepo/.github/workflows/release.yaml@refs/heads/main`

func TestSamplesAreAccepted(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	files, err := filepath.Glob(filepath.Join(envtest.RepoRoot(), "config", "samples", "sigwatch_*.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(files).To(HaveLen(6))
	for _, f := range files {
		data, err := os.ReadFile(f)
		g.Expect(err).NotTo(HaveOccurred())
		u := &unstructured.Unstructured{}
		g.Expect(yaml.Unmarshal(data, &u.Object)).To(Succeed(), f)
		g.Expect(env.Client.Create(ctx, u)).To(Succeed(), "sample %s", filepath.Base(f))
		t.Cleanup(func() { _ = env.Client.Delete(ctx, u) })
	}
}

func TestPolicyDefaults(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	u := policy(t, "defaults", `
images: [ghcr.io/yourorg/**]
authorities:
  - name: k
    key:
      publicKey: |
`+indent(validKey, 8)+`
trustedRoot:
  configMapRef: {name: private-sigstore, namespace: sigwatch-system}
`)
	g.Expect(env.Client.Create(ctx, u)).To(Succeed())
	t.Cleanup(func() { _ = env.Client.Delete(ctx, u) })

	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(u.GroupVersionKind())
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(u), got)).To(Succeed())
	interval, _, _ := unstructured.NestedString(got.Object, "spec", "reverifyInterval")
	g.Expect(interval).To(Equal("1h"))
	mode, _, _ := unstructured.NestedString(got.Object, "spec", "authorities", "0", "transparencyLog", "mode")
	g.Expect(mode).To(BeEmpty(), "no transparencyLog given: the engine applies Required")
	key, _, _ := unstructured.NestedString(got.Object, "spec", "trustedRoot", "configMapRef", "key")
	g.Expect(key).To(Equal("trusted_root.json"))
	severity, _, _ := unstructured.NestedString(got.Object, "spec", "severity")
	g.Expect(severity).To(Equal("high"))
	policyMode, _, _ := unstructured.NestedString(got.Object, "spec", "mode")
	g.Expect(policyMode).To(Equal("Enforce"))
}

func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
}

func TestInvalidPoliciesAreRejected(t *testing.T) {
	many := func(n int, f func(i int) string) string {
		var b strings.Builder
		for i := range n {
			b.WriteString(f(i))
		}
		return b.String()
	}
	cases := []struct {
		name string
		spec string
		want []string // every string must appear in the API server's message
	}{
		{"images missing", `authorities:` + keylessAuthority,
			[]string{"spec.images", "Required value"}},
		{"images empty", `images: []
authorities:` + keylessAuthority,
			[]string{"spec.images", "should have at least 1 items"}},
		{"too many images", "images:\n" + many(65, func(i int) string { return fmt.Sprintf("  - ghcr.io/o/i%d\n", i) }) +
			"authorities:" + keylessAuthority,
			[]string{"spec.images", "must have at most 64 items"}},
		{"image pattern with a tag", `images: ["nginx:latest"]
authorities:` + keylessAuthority,
			[]string{"spec.images[0]", "without tag or digest"}},
		{"image pattern with a digest", `images: ["ghcr.io/o/app@sha256:abc"]
authorities:` + keylessAuthority,
			[]string{"spec.images[0]", "without tag or digest"}},
		{"authorities empty", `images: [ghcr.io/o/**]
authorities: []`,
			[]string{"spec.authorities", "should have at least 1 items"}},
		{"too many authorities", "images: [ghcr.io/o/**]\nauthorities:\n" + many(17, func(i int) string {
			return fmt.Sprintf("  - name: a%d\n    keyless: {identities: [{issuer: https://i, subject: s}]}\n", i)
		}), []string{"spec.authorities", "must have at most 16 items"}},
		{"duplicate authority names", `images: [ghcr.io/o/**]
authorities:` + keylessAuthority + keylessAuthority,
			[]string{"spec.authorities[1]", "Duplicate value"}},
		{"authority name not DNS-1123", `images: [ghcr.io/o/**]
authorities:
  - name: Release_Team
    keyless: {identities: [{issuer: https://i, subject: s}]}`,
			[]string{"spec.authorities[0].name", "should match"}},
		{"authority with keyless and key", `images: [ghcr.io/o/**]
authorities:
  - name: both
    keyless: {identities: [{issuer: https://i, subject: s}]}
    key:
      publicKey: |
` + indent(validKey, 8),
			[]string{"spec.authorities[0]", "exactly one of keyless or key must be set"}},
		{"authority with neither keyless nor key", `images: [ghcr.io/o/**]
authorities:
  - name: none`,
			[]string{"spec.authorities[0]", "exactly one of keyless or key must be set"}},
		{"keyless without identities", `images: [ghcr.io/o/**]
authorities:
  - name: ci
    keyless: {identities: []}`,
			[]string{"spec.authorities[0].keyless.identities", "should have at least 1 items"}},
		{"identity without subject", `images: [ghcr.io/o/**]
authorities:
  - name: ci
    keyless: {identities: [{issuer: https://token.actions.githubusercontent.com}]}`,
			[]string{"spec.authorities[0].keyless.identities[0]", "exactly one of subject or subjectRegExp must be set"}},
		{"identity without issuer", `images: [ghcr.io/o/**]
authorities:
  - name: ci
    keyless: {identities: [{subject: someone@example.com}]}`,
			[]string{"spec.authorities[0].keyless.identities[0]", "exactly one of issuer or issuerRegExp must be set"}},
		{"identity with issuer and issuerRegExp", `images: [ghcr.io/o/**]
authorities:
  - name: ci
    keyless: {identities: [{issuer: https://a, issuerRegExp: "https://.*", subject: s}]}`,
			[]string{"spec.authorities[0].keyless.identities[0]", "exactly one of issuer or issuerRegExp must be set"}},
		{"identity with subject and subjectRegExp", `images: [ghcr.io/o/**]
authorities:
  - name: ci
    keyless: {identities: [{issuer: https://a, subject: s, subjectRegExp: ".*"}]}`,
			[]string{"spec.authorities[0].keyless.identities[0]", "exactly one of subject or subjectRegExp must be set"}},
		{"empty githubWorkflow", `images: [ghcr.io/o/**]
authorities:
  - name: ci
    keyless: {identities: [{issuer: https://a, subject: s, githubWorkflow: {}}]}`,
			[]string{"spec.authorities[0].keyless.identities[0].githubWorkflow", "githubWorkflow needs at least one claim"}},
		{"githubWorkflow sha not a commit", `images: [ghcr.io/o/**]
authorities:
  - name: ci
    keyless: {identities: [{issuer: https://a, subject: s, githubWorkflow: {sha: main}}]}`,
			[]string{"spec.authorities[0].keyless.identities[0].githubWorkflow.sha", "at least 40 chars long"}},
		{"githubWorkflow sha of a commit's length, not hex", `images: [ghcr.io/o/**]
authorities:
  - name: ci
    keyless: {identities: [{issuer: https://a, subject: s, githubWorkflow: {sha: ` + strings.Repeat("g", 40) + `}}]}`,
			[]string{"spec.authorities[0].keyless.identities[0].githubWorkflow.sha", "should match"}},
		{"empty claims", `images: [ghcr.io/o/**]
authorities:
  - name: ci
    keyless: {identities: [{issuer: https://a, subject: s, claims: {}}]}`,
			[]string{"spec.authorities[0].keyless.identities[0].claims", "should have at least 1 properties"}},
		{"empty claimsRegExp", `images: [ghcr.io/o/**]
authorities:
  - name: ci
    keyless: {identities: [{issuer: https://a, subject: s, claimsRegExp: {}}]}`,
			[]string{"spec.authorities[0].keyless.identities[0].claimsRegExp", "should have at least 1 properties"}},
		{"a misspelt claim alone is pruned, leaving claims empty", `images: [ghcr.io/o/**]
authorities:
  - name: ci
    keyless: {identities: [{issuer: https://a, subject: s, claims: {sourceRepositoryId: "1"}}]}`,
			[]string{"spec.authorities[0].keyless.identities[0].claims", "should have at least 1 properties"}},
		{"empty claim", `images: [ghcr.io/o/**]
authorities:
  - name: ci
    keyless: {identities: [{issuer: https://a, subject: s, claims: {sourceRepositoryIdentifier: ""}}]}`,
			[]string{"spec.authorities[0].keyless.identities[0].claims.sourceRepositoryIdentifier", "at least 1 chars long"}},
		{"claim too long", `images: [ghcr.io/o/**]
authorities:
  - name: ci
    keyless: {identities: [{issuer: https://a, subject: s, claimsRegExp: {buildSignerURI: ` + strings.Repeat("a", 1025) + `}}]}`,
			[]string{"spec.authorities[0].keyless.identities[0].claimsRegExp.buildSignerURI", "may not be more than 1024 bytes"}},
		{"trustedRoot with neither source", `images: [ghcr.io/o/**]
authorities:` + keylessAuthority + `
trustedRoot: {}`,
			[]string{"spec.trustedRoot", "exactly one of configMapRef or tuf must be set"}},
		{"trustedRoot with both sources", `images: [ghcr.io/o/**]
authorities:` + keylessAuthority + `
trustedRoot:
  configMapRef: {name: private-sigstore, namespace: sigwatch-system}
  tuf: {mirror: "https://tuf.example.com", rootRef: {name: private-tuf, namespace: sigwatch-system}}`,
			[]string{"spec.trustedRoot", "exactly one of configMapRef or tuf must be set"}},
		{"tuf mirror not an http URL", `images: [ghcr.io/o/**]
authorities:` + keylessAuthority + `
trustedRoot:
  tuf: {mirror: "file:///etc/tuf", rootRef: {name: private-tuf, namespace: sigwatch-system}}`,
			[]string{"spec.trustedRoot.tuf.mirror", "mirror must be an http(s) URL"}},
		{"tuf without rootRef", `images: [ghcr.io/o/**]
authorities:` + keylessAuthority + `
trustedRoot:
  tuf: {mirror: "https://tuf.example.com"}`,
			[]string{"spec.trustedRoot.tuf.rootRef", "Required value"}},
		{"key with publicKey and secretRef", `images: [ghcr.io/o/**]
authorities:
  - name: k
    key:
      secretRef: {name: cosign, namespace: ns, key: cosign.pub}
      publicKey: |
` + indent(validKey, 8),
			[]string{"spec.authorities[0].key", "exactly one of publicKey or secretRef must be set"}},
		{"key with neither publicKey nor secretRef", `images: [ghcr.io/o/**]
authorities:
  - name: k
    key: {}`,
			[]string{"spec.authorities[0].key", "exactly one of publicKey or secretRef must be set"}},
		{"publicKey not PEM", `images: [ghcr.io/o/**]
authorities:
  - name: k
    key: {publicKey: "not a key"}`,
			[]string{"spec.authorities[0].key.publicKey", "publicKey must be a PEM public key"}},
		{"secretRef without namespace", `images: [ghcr.io/o/**]
authorities:
  - name: k
    key: {secretRef: {name: cosign, key: cosign.pub}}`,
			[]string{"spec.authorities[0].key.secretRef.namespace", "Required value"}},
		{"transparency log Disabled with keyless", `images: [ghcr.io/o/**]
authorities:
  - name: ci
    keyless: {identities: [{issuer: https://a, subject: s}]}
    transparencyLog: {mode: Disabled}`,
			[]string{"spec.authorities[0]", "transparencyLog.mode Disabled is only allowed with key"}},
		{"transparency log mode unknown", `images: [ghcr.io/o/**]
authorities:
  - name: k
    key: {secretRef: {name: cosign, namespace: ns, key: cosign.pub}}
    transparencyLog: {mode: Sometimes}`,
			[]string{"spec.authorities[0].transparencyLog.mode", "Unsupported value", "Required", "Optional", "Disabled"}},
		{"online check without a log", `images: [ghcr.io/o/**]
authorities:
  - name: k
    key: {secretRef: {name: cosign, namespace: ns, key: cosign.pub}}
    transparencyLog: {mode: Disabled, online: Require}`,
			[]string{"spec.authorities[0].transparencyLog", "online needs a transparency log"}},
		{"online check unknown", `images: [ghcr.io/o/**]
authorities:
  - name: k
    key: {secretRef: {name: cosign, namespace: ns, key: cosign.pub}}
    transparencyLog: {online: Sometimes}`,
			[]string{"spec.authorities[0].transparencyLog.online", "Unsupported value", "Off", "Monitor", "Require"}},
		{"attestation without predicateType", `images: [ghcr.io/o/**]
authorities:` + keylessAuthority + `
attestations:
  - name: slsa`,
			[]string{"spec.attestations[0].predicateType", "Required value"}},
		{"attestation predicateType not a URI", `images: [ghcr.io/o/**]
authorities:` + keylessAuthority + `
attestations:
  - name: slsa
    predicateType: slsa provenance`,
			[]string{"spec.attestations[0].predicateType", "predicateType must be a URI"}},
		{"duplicate attestation names", `images: [ghcr.io/o/**]
authorities:` + keylessAuthority + `
attestations:
  - {name: slsa, predicateType: "https://slsa.dev/provenance/v1"}
  - {name: slsa, predicateType: "https://slsa.dev/provenance/v0.2"}`,
			[]string{"spec.attestations[1]", "Duplicate value"}},
		{"empty attestation condition", `images: [ghcr.io/o/**]
authorities:` + keylessAuthority + `
attestations:
  - {name: slsa, predicateType: "https://slsa.dev/provenance/v1", conditions: [""]}`,
			[]string{"spec.attestations[0].conditions[0]", "should be at least 1 chars long"}},
		{"reverifyInterval below 1m", `images: [ghcr.io/o/**]
authorities:` + keylessAuthority + `
reverifyInterval: 30s`,
			[]string{"spec.reverifyInterval", "reverifyInterval must be at least 1m"}},
		{"maxSignatureAge below 1m", `images: [ghcr.io/o/**]
authorities:
  - name: ci
    maxSignatureAge: 30s
    keyless: {identities: [{issuer: "https://token.actions.githubusercontent.com", subject: "https://github.com/o/r/.github/workflows/release.yaml@refs/heads/main"}]}`,
			[]string{"spec.authorities[0].maxSignatureAge", "maxSignatureAge must be at least 1m"}},
		{"maxSignatureAge not a duration", `images: [ghcr.io/o/**]
authorities:
  - name: ci
    maxSignatureAge: 30d
    keyless: {identities: [{issuer: "https://token.actions.githubusercontent.com", subject: "https://github.com/o/r/.github/workflows/release.yaml@refs/heads/main"}]}`,
			[]string{"spec.authorities[0].maxSignatureAge", "should match"}},
		{"reverifyInterval not a duration", `images: [ghcr.io/o/**]
authorities:` + keylessAuthority + `
reverifyInterval: hourly`,
			[]string{"spec.reverifyInterval", "should match"}},
		{"trustedRoot configMapRef without name", `images: [ghcr.io/o/**]
authorities:` + keylessAuthority + `
trustedRoot: {configMapRef: {namespace: sigwatch-system}}`,
			[]string{"spec.trustedRoot.configMapRef.name", "Required value"}},
		{"signatureRepository with a tag", `images: [ghcr.io/o/**]
authorities:` + keylessAuthority + `
signatureRepository: "ghcr.io/o/sigs:latest"`,
			[]string{"spec.signatureRepository", "should match"}},
	}
	g := NewWithT(t)
	g.Expect(len(cases)).To(BeNumerically(">=", 12))
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			u := policy(t, fmt.Sprintf("invalid-%d", i), tc.spec)
			err := env.Client.Create(context.Background(), u)
			g.Expect(err).To(HaveOccurred(), "the API server accepted an invalid policy")
			t.Log(err)
			for _, w := range tc.want {
				g.Expect(err.Error()).To(ContainSubstring(w))
			}
		})
	}
}

func TestValidPolicyVariants(t *testing.T) {
	cases := map[string]string{
		"regexps and workflow claims": `images: ["ghcr.io/yourorg/*", "127.0.0.1:*/**", "localhost:5000/app"]
authorities:
  - name: ci
    keyless:
      identities:
        - issuerRegExp: https://token\.actions\.githubusercontent\.com
          subjectRegExp: https://github\.com/yourorg/.+
          githubWorkflow: {repository: yourorg/yourrepo, ref: refs/heads/main, sha: 0123456789abcdef0123456789abcdef01234567, trigger: push, name: release}
reverifyInterval: 1h30m`,
		"every claim, exactly and as expressions": `images: [ghcr.io/yourorg/**]
authorities:
  - name: ci
    keyless:
      identities:
        - issuer: https://token.actions.githubusercontent.com
          subject: https://github.com/yourorg/workflows/.github/workflows/build.yaml@refs/tags/v1
          claims: {buildSignerURI: a, buildSignerDigest: b, runnerEnvironment: c, sourceRepositoryURI: d,
            sourceRepositoryDigest: e, sourceRepositoryRef: f, sourceRepositoryIdentifier: "1", sourceRepositoryOwnerURI: g,
            sourceRepositoryOwnerIdentifier: "2", buildConfigURI: h, buildConfigDigest: i, buildTrigger: j,
            runInvocationURI: k, sourceRepositoryVisibilityAtSigning: public}
          claimsRegExp: {sourceRepositoryRef: "refs/tags/v.*", buildConfigURI: "https://github\\.com/yourorg/.+"}`,
		"trust root from a TUF repository": `images: [registry.example.com/**]
authorities:` + keylessAuthority + `
trustedRoot:
  tuf: {mirror: "https://tuf.sigstore.example.com", rootRef: {name: private-tuf, namespace: sigwatch-system}}`,
		"key from secret without log": `images: [registry.example.com/**]
namespaceSelector: {matchExpressions: [{key: team, operator: In, values: [a, b]}]}
authorities:
  - name: k
    key: {secretRef: {name: cosign, namespace: sigwatch-system, key: cosign.pub}}
    transparencyLog: {mode: Disabled}
signatureRepository: registry.example.com/signatures
reverifyInterval: 1m`,
	}
	i := 0
	for name, spec := range cases {
		i++
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			u := policy(t, fmt.Sprintf("valid-%d", i), spec)
			g.Expect(env.Client.Create(context.Background(), u)).To(Succeed())
			t.Cleanup(func() { _ = env.Client.Delete(context.Background(), u) })
		})
	}
}
