package policy

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/imageref"
)

// Fuzz targets for policies (any object a policy writer can get past the CRD schema, and policy files
// as the CLI reads them) and for CEL conditions over the predicates of attestations, which whoever signs
// the attestation writes. `go test` runs their seeds; `make fuzz` runs each for FUZZTIME.

// fuzzVectorDirs are where the real Sigstore test vectors are: the copy the bundleverify tests use, then
// the shared folder they were copied from. Seeds from there are left out when neither exists.
var fuzzVectorDirs = []string{"../bundleverify/testdata", "../../../shared/vectors"}

const fuzzSamples = "../../config/samples/sigwatch_v1alpha1_imagesignaturepolicy_*.yaml"

// fuzzPEM is the public key of the key sample (config/samples).
const fuzzPEM = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEF3fy0XTNre1uunEPWC9JSIeSaVZl
njPo6YCiCYAhYllz9GhMSjgbKwjVg/hSpmaWMf11bA/aJODeMPg95PM1cQ==
-----END PUBLIC KEY-----
`

// fuzzSamplePolicies returns the sample policies (none if they cannot be read).
func fuzzSamplePolicies(tb testing.TB) []*sigwatchv1alpha1.ImageSignaturePolicy {
	tb.Helper()
	files, _ := filepath.Glob(fuzzSamples)
	var out []*sigwatchv1alpha1.ImageSignaturePolicy
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		ps, err := Decode(data)
		if err != nil {
			tb.Fatalf("sample %s: %v", f, err)
		}
		out = append(out, ps...)
	}
	return out
}

// fuzzPolicyFields are the fields of a policy that FuzzCompile fills from fuzzed strings.
type fuzzPolicyFields struct {
	images, selectorKey, selectorOp, selectorValues, signatureRepository, reverifyInterval           string
	authority, issuer, issuerRegExp, subject, subjectRegExp, workflowRepository, publicKey, tlogMode string
	kind                                                                                             uint8
	predicateType, conditions, trustedRoot                                                           string
}

// fuzzFieldsOf takes the fields of a sample policy, to seed FuzzCompile with.
func fuzzFieldsOf(p *sigwatchv1alpha1.ImageSignaturePolicy) fuzzPolicyFields {
	var f fuzzPolicyFields
	var images []string
	for _, i := range p.Spec.Images {
		images = append(images, string(i))
	}
	f.images = strings.Join(images, "\n")
	if sel := p.Spec.NamespaceSelector; sel != nil {
		for k, v := range sel.MatchLabels {
			f.selectorKey, f.selectorValues = k, v
		}
	}
	f.signatureRepository = p.Spec.SignatureRepository
	if p.Spec.ReverifyInterval != nil {
		f.reverifyInterval = p.Spec.ReverifyInterval.Duration.String()
	}
	a := p.Spec.Authorities[0]
	f.authority = a.Name
	if a.TransparencyLog != nil {
		f.tlogMode = string(a.TransparencyLog.Mode)
	}
	if a.Key != nil {
		f.kind, f.publicKey = 1, a.Key.PublicKey
	} else {
		id := a.Keyless.Identities[0]
		f.issuer, f.issuerRegExp, f.subject, f.subjectRegExp = id.Issuer, id.IssuerRegExp, id.Subject, id.SubjectRegExp
		if id.GitHubWorkflow != nil {
			f.workflowRepository = id.GitHubWorkflow.Repository
		}
	}
	if len(p.Spec.Attestations) > 0 {
		f.predicateType = p.Spec.Attestations[0].PredicateType
		f.conditions = strings.Join(p.Spec.Attestations[0].Conditions, "\n")
	}
	if p.Spec.TrustedRoot != nil {
		f.trustedRoot = p.Spec.TrustedRoot.ConfigMapRef.Name
	}
	return f
}

func (f fuzzPolicyFields) add(tf *testing.F) {
	tf.Add(f.images, f.selectorKey, f.selectorOp, f.selectorValues, f.signatureRepository, f.reverifyInterval,
		f.authority, f.issuer, f.issuerRegExp, f.subject, f.subjectRegExp, f.workflowRepository, f.publicKey, f.tlogMode,
		f.kind, f.predicateType, f.conditions, f.trustedRoot)
}

// fuzzClip makes s what a Kubernetes object can hold (valid UTF-8) within the CRD's maximum length.
func fuzzClip(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	for len(s) > max {
		s = strings.ToValidUTF8(s[:max], "")
	}
	return s
}

func fuzzList(s string, maxItems, maxLen int) []string {
	if s == "" {
		return nil
	}
	items := strings.Split(s, "\n")
	if len(items) > maxItems {
		items = items[:maxItems]
	}
	for i := range items {
		items[i] = fuzzClip(items[i], maxLen)
	}
	return items
}

// policy builds the object: kind picks the authority (0 keyless, 1 inline key, 2 key from a Secret,
// 3 both keyless and key) and, from 4 on, adds a second authority.
func (f fuzzPolicyFields) policy() *sigwatchv1alpha1.ImageSignaturePolicy {
	p := &sigwatchv1alpha1.ImageSignaturePolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: sigwatchv1alpha1.GroupVersion.String(), Kind: "ImageSignaturePolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: "fuzz", Generation: 7},
	}
	for _, i := range fuzzList(f.images, 64, 255) {
		p.Spec.Images = append(p.Spec.Images, sigwatchv1alpha1.ImagePattern(i))
	}
	if f.selectorKey != "" {
		key := fuzzClip(f.selectorKey, 317)
		if f.selectorOp == "" {
			p.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{key: fuzzClip(f.selectorValues, 63)}}
		} else {
			p.Spec.NamespaceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: key, Operator: metav1.LabelSelectorOperator(fuzzClip(f.selectorOp, 32)), Values: fuzzList(f.selectorValues, 16, 63)}}}
		}
	}
	p.Spec.SignatureRepository = fuzzClip(f.signatureRepository, 255)
	if d, err := time.ParseDuration(f.reverifyInterval); err == nil {
		p.Spec.ReverifyInterval = &metav1.Duration{Duration: d}
	}
	a := sigwatchv1alpha1.Authority{Name: fuzzClip(f.authority, 63)}
	if f.tlogMode != "" {
		a.TransparencyLog = &sigwatchv1alpha1.TransparencyLogPolicy{Mode: sigwatchv1alpha1.TransparencyLogMode(fuzzClip(f.tlogMode, 16))}
	}
	keyless := &sigwatchv1alpha1.KeylessAuthority{Identities: []sigwatchv1alpha1.Identity{{
		Issuer: fuzzClip(f.issuer, 1024), IssuerRegExp: fuzzClip(f.issuerRegExp, 1024),
		Subject: fuzzClip(f.subject, 1024), SubjectRegExp: fuzzClip(f.subjectRegExp, 1024),
	}}}
	if f.workflowRepository != "" {
		keyless.Identities[0].GitHubWorkflow = &sigwatchv1alpha1.GitHubWorkflowClaims{Repository: fuzzClip(f.workflowRepository, 256)}
	}
	key := &sigwatchv1alpha1.KeyAuthority{PublicKey: fuzzClip(f.publicKey, 16384)}
	switch f.kind % 4 {
	case 0:
		a.Keyless = keyless
	case 1:
		a.Key = key
	case 2:
		a.Key = &sigwatchv1alpha1.KeyAuthority{SecretRef: &sigwatchv1alpha1.SecretKeyReference{Name: "cosign", Namespace: "ns", Key: "cosign.pub"}}
	case 3:
		a.Keyless, a.Key = keyless, key
	}
	p.Spec.Authorities = []sigwatchv1alpha1.Authority{a}
	if f.kind >= 4 {
		b := *a.DeepCopy()
		b.Name += "-2"
		p.Spec.Authorities = append(p.Spec.Authorities, b)
	}
	if f.predicateType != "" || f.conditions != "" {
		p.Spec.Attestations = []sigwatchv1alpha1.Attestation{{Name: "att", PredicateType: fuzzClip(f.predicateType, 256),
			Conditions: fuzzList(f.conditions, 16, 4096)}}
	}
	if f.trustedRoot != "" {
		p.Spec.TrustedRoot = &sigwatchv1alpha1.TrustedRootSource{ConfigMapRef: sigwatchv1alpha1.ConfigMapKeyReference{
			Name: fuzzClip(f.trustedRoot, 253), Namespace: "sigwatch-system"}}
	}
	return p
}

// fuzzInputs reads a secretRef key as the PEM of the publicKey field.
func fuzzInputs(pemKey string) Inputs {
	return Inputs{SecretKey: func(sigwatchv1alpha1.SecretKeyReference) ([]byte, error) { return []byte(pemKey), nil }}
}

// FuzzCompile: a policy object either fails to compile with an *Error that names a spec field and an
// API reason (a broken namespaceSelector leaving the scope unrestricted, failing closed), or compiles
// into a policy that says what the object says, without changing the object; compiling it again, or
// after the JSON round trip the API server makes, gives the same hash, and a policy with one more image
// pattern or another key gets another hash.
func FuzzCompile(f *testing.F) {
	for _, p := range fuzzSamplePolicies(f) {
		fuzzFieldsOf(p).add(f)
	}
	// The cases of policy_test.go.
	base := fuzzPolicyFields{images: "ghcr.io/yourorg/**\nnginx", authority: "ci", issuer: "https://token.actions.githubusercontent.com",
		subject: "https://github.com/yourorg/app/.github/workflows/release.yml@refs/heads/main"}
	for _, mutate := range []func(*fuzzPolicyFields){
		func(*fuzzPolicyFields) {},
		func(f *fuzzPolicyFields) {
			f.issuer, f.subject = "", ""
			f.issuerRegExp, f.subjectRegExp = `https://token\.actions\.githubusercontent\.com`, `https://github\.com/yourorg/app/.*`
		},
		func(f *fuzzPolicyFields) { f.subject, f.subjectRegExp = "", "(unclosed" },
		func(f *fuzzPolicyFields) { f.issuer, f.issuerRegExp = "", "[" },
		func(f *fuzzPolicyFields) { f.subject = "" },
		func(f *fuzzPolicyFields) { f.images = "ghcr.io/[x" },
		func(f *fuzzPolicyFields) {
			f.images = "GHCR.IO:443/yourorg/**\n[::1]:5000/app\nregistry-1.docker.io/library/nginx"
		},
		func(f *fuzzPolicyFields) {
			f.predicateType, f.conditions = "https://slsa.dev/provenance/v1", "true\npredicate.builder.id =="
		},
		func(f *fuzzPolicyFields) { f.predicateType, f.conditions = "https://slsa.dev/provenance/v1", `"yes"` },
		func(f *fuzzPolicyFields) { f.tlogMode = string(sigwatchv1alpha1.TransparencyLogDisabled) },
		func(f *fuzzPolicyFields) { f.kind, f.publicKey = 1, "ssh-ed25519 AAAA" },
		func(f *fuzzPolicyFields) {
			f.kind, f.publicKey = 2, fuzzPEM
		},
		func(f *fuzzPolicyFields) { f.kind, f.publicKey = 5, fuzzPEM },
		func(f *fuzzPolicyFields) { f.kind = 3 },
		func(f *fuzzPolicyFields) { f.selectorKey, f.selectorOp, f.selectorValues = "team", "In", "a\nb" },
		func(f *fuzzPolicyFields) { f.selectorKey, f.selectorOp, f.selectorValues = "team", "Exists", "a" },
		func(f *fuzzPolicyFields) { f.selectorKey, f.selectorOp = "team", "Bogus" },
		func(f *fuzzPolicyFields) { f.selectorKey, f.selectorValues = "bad key!", "v" },
		func(f *fuzzPolicyFields) { f.reverifyInterval = "30s" },
		func(f *fuzzPolicyFields) { f.signatureRepository = "registry.example.com/signatures" },
		func(f *fuzzPolicyFields) { f.signatureRepository = "UPPER/case" },
		func(f *fuzzPolicyFields) { f.trustedRoot = "private-sigstore" },
	} {
		fields := base
		mutate(&fields)
		fields.add(f)
	}
	f.Fuzz(func(t *testing.T, images, selectorKey, selectorOp, selectorValues, signatureRepository, reverifyInterval,
		authority, issuer, issuerRegExp, subject, subjectRegExp, workflowRepository, publicKey, tlogMode string,
		kind uint8, predicateType, conditions, trustedRoot string) {
		fields := fuzzPolicyFields{images, selectorKey, selectorOp, selectorValues, signatureRepository, reverifyInterval,
			authority, issuer, issuerRegExp, subject, subjectRegExp, workflowRepository, publicKey, tlogMode,
			kind, predicateType, conditions, trustedRoot}
		obj := fields.policy()
		checkCompile(t, obj, fuzzInputs(publicKey), publicKey)
	})
}

// FuzzDecode: policy files (YAML or JSON, several documents) either do not decode or decode into
// named ImageSignaturePolicies that compile as FuzzCompile requires, and that decode to the same policy
// (the same hash, or the same error) after being written out as YAML again.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob(fuzzSamples)
	var all []byte
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		f.Add(data)
		all = append(append(all, data...), "\n---\n"...)
	}
	f.Add(all)
	for _, doc := range []string{
		"apiVersion: sigwatch.dev/v1alpha1\nkind: ImageSignaturePolicy\nmetadata: {name: p}\nspec: {images: [a], authorities: [], imagez: []}",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: p}",
		"apiVersion: sigwatch.dev/v1alpha1\nkind: ImageSignaturePolicy\nspec: {images: [a]}",
		"# nothing\n",
		`{"apiVersion":"sigwatch.dev/v1alpha1","kind":"ImageSignaturePolicy","metadata":{"name":"j"},"spec":{"images":["nginx"],"authorities":[{"name":"k","key":{"secretRef":{"name":"s","namespace":"n","key":"k"}}}],"reverifyInterval":"2m"}}`,
	} {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := Decode(data)
		if err != nil {
			return
		}
		for _, p := range ps {
			if p.Name == "" || p.Kind != "ImageSignaturePolicy" || p.APIVersion != sigwatchv1alpha1.GroupVersion.String() {
				t.Fatalf("Decode returned %s %s %q", p.APIVersion, p.Kind, p.Name)
			}
			cp, cerr := checkCompile(t, p, Inputs{}, "")
			out, err := yaml.Marshal(p)
			if err != nil {
				t.Fatalf("a decoded policy does not marshal: %v", err)
			}
			again, err := Decode(out)
			if err != nil || len(again) != 1 {
				t.Fatalf("a decoded policy, written out, does not decode: %v\n%s", err, out)
			}
			cp2, cerr2 := Compile(again[0], Inputs{})
			switch {
			case (cerr == nil) != (cerr2 == nil):
				t.Fatalf("compiles %v before and %v after a YAML round trip", cerr, cerr2)
			case cerr != nil && fuzzField(cerr) != fuzzField(cerr2):
				t.Fatalf("fails on %s before and on %s after a YAML round trip", fuzzField(cerr), fuzzField(cerr2))
			case cerr == nil && cp.Hash != cp2.Hash:
				t.Fatalf("hash %s before and %s after a YAML round trip", cp.Hash, cp2.Hash)
			}
		}
	})
}

func fuzzField(err error) string {
	var perr *Error
	if errors.As(err, &perr) {
		return perr.Field
	}
	return ""
}

// checkCompile compiles obj and checks the result (see FuzzCompile).
func checkCompile(t *testing.T, obj *sigwatchv1alpha1.ImageSignaturePolicy, in Inputs, keyPEM string) (*Policy, error) {
	t.Helper()
	before := obj.DeepCopy()
	p, err := Compile(obj, in)
	if !reflect.DeepEqual(before, obj) {
		t.Fatal("Compile changed the policy object")
	}
	if err != nil {
		var perr *Error
		switch {
		case p != nil:
			t.Fatalf("Compile failed (%v) and returned a policy", err)
		case !errors.As(err, &perr):
			t.Fatalf("a compile error that is not an *Error: %v", err)
		case !strings.HasPrefix(perr.Field, "spec.") || !strings.Contains(err.Error(), perr.Field):
			t.Fatalf("the error does not name a spec field: %q, %v", perr.Field, err)
		case perr.Policy != obj.Name:
			t.Fatalf("the error names policy %q, not %q", perr.Policy, obj.Name)
		case perr.Reason != sigwatchv1alpha1.InvalidPolicyReason && perr.Reason != sigwatchv1alpha1.KeyUnavailableReason &&
			perr.Reason != sigwatchv1alpha1.TrustedRootUnavailableReason:
			t.Fatalf("reason %q is not a Stalled reason of the API", perr.Reason)
		case perr.Field == "spec.namespaceSelector" && ScopeOf(obj.Spec).Namespaces != nil:
			t.Fatal("a namespaceSelector that does not compile still restricts the scope (it must fail closed)")
		}
		return nil, err
	}
	checkCompiled(t, obj, p)

	again, err := Compile(obj.DeepCopy(), in)
	if err != nil || again.Hash != p.Hash {
		t.Fatalf("compiled again: hash %v (%v), first %s", again, err, p.Hash)
	}
	data, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	var stored sigwatchv1alpha1.ImageSignaturePolicy
	if err := json.Unmarshal(data, &stored); err != nil {
		t.Fatal(err)
	}
	if again, err = Compile(&stored, in); err != nil || again.Hash != p.Hash {
		t.Fatalf("after a JSON round trip: %v (%v), before %s", again, err, p.Hash)
	}

	more := obj.DeepCopy()
	more.Spec.Images = append(more.Spec.Images, "fuzz.example/another/**")
	if other, err := Compile(more, in); err == nil && other.Hash == p.Hash {
		t.Fatal("a policy with one more image pattern has the same hash")
	}
	if keyPEM != "" && in.SecretKey != nil && fuzzHasSecretRef(obj) {
		rotated := Inputs{SecretKey: func(sigwatchv1alpha1.SecretKeyReference) ([]byte, error) { return []byte(fuzzPEM), nil }}
		if keyPEM != fuzzPEM {
			if other, err := Compile(obj.DeepCopy(), rotated); err == nil && other.Hash == p.Hash {
				t.Fatal("a policy whose Secret holds another key has the same hash")
			}
		}
	}
	return p, nil
}

func fuzzHasSecretRef(obj *sigwatchv1alpha1.ImageSignaturePolicy) bool {
	for _, a := range obj.Spec.Authorities {
		if a.Key != nil && a.Key.SecretRef != nil {
			return true
		}
	}
	return false
}

// checkCompiled checks that a compiled policy says what the object says.
func checkCompiled(t *testing.T, obj *sigwatchv1alpha1.ImageSignaturePolicy, p *Policy) {
	t.Helper()
	if len(p.Hash) != 64 || strings.Trim(p.Hash, "0123456789abcdef") != "" {
		t.Fatalf("hash %q is not 64 lower-case hex characters", p.Hash)
	}
	if _, err := hex.DecodeString(p.Hash); err != nil {
		t.Fatal(err)
	}
	if p.Name != obj.Name || p.Generation != obj.Generation {
		t.Fatalf("compiled %s/%d from %s/%d", p.Name, p.Generation, obj.Name, obj.Generation)
	}
	if p.ReverifyInterval < time.Minute {
		t.Fatalf("reverify interval %v, under a minute", p.ReverifyInterval)
	}
	if len(p.Images) != len(obj.Spec.Images) || len(p.Images) == 0 {
		t.Fatalf("%d image patterns compiled from %d", len(p.Images), len(obj.Spec.Images))
	}
	for i, img := range obj.Spec.Images {
		if p.Images[i] != imageref.NormalizePattern(string(img)) || imageref.ValidatePattern(p.Images[i]) != nil {
			t.Fatalf("image pattern %q compiled as %q", img, p.Images[i])
		}
	}
	if obj.Spec.NamespaceSelector != nil && p.Namespaces == nil {
		t.Fatal("a namespaceSelector that compiles does not restrict the scope")
	}
	for _, repo := range []string{"ghcr.io/yourorg/app", "docker.io/library/nginx", "fuzz.example/x"} {
		if p.Covers(repo, labels.Set{"fuzz": "x"}) && !p.MatchesImage(repo) {
			t.Fatalf("the policy covers %s in a namespace but not in none", repo)
		}
	}
	if (obj.Spec.SignatureRepository == "") != (p.SignatureRepository == "") {
		t.Fatalf("signature repository %q compiled as %q", obj.Spec.SignatureRepository, p.SignatureRepository)
	}
	if p.SignatureRepository != "" {
		if again, err := imageref.NormalizeRepository(p.SignatureRepository); err != nil || again != p.SignatureRepository {
			t.Fatalf("signature repository %q is not normalized (%q, %v)", p.SignatureRepository, again, err)
		}
	}
	if len(p.Authorities) != len(obj.Spec.Authorities) || len(p.Authorities) == 0 {
		t.Fatalf("%d authorities compiled from %d", len(p.Authorities), len(obj.Spec.Authorities))
	}
	for i, a := range p.Authorities {
		spec := obj.Spec.Authorities[i]
		switch {
		case a.Keyless() != (spec.Keyless != nil) || (spec.Keyless != nil) == (spec.Key != nil):
			t.Fatalf("authority %d: keyless %v from keyless %v, key %v", i, a.Keyless(), spec.Keyless != nil, spec.Key != nil)
		case a.Keyless() && len(a.Identities) != len(spec.Keyless.Identities):
			t.Fatalf("authority %d: %d identities from %d", i, len(a.Identities), len(spec.Keyless.Identities))
		case a.Keyless() && a.TransparencyLog == sigwatchv1alpha1.TransparencyLogDisabled:
			t.Fatalf("authority %d: keyless with the transparency log disabled", i)
		case !a.Keyless() && (len(a.KeyID) != 64 || strings.Trim(a.KeyID, "0123456789abcdef") != ""):
			t.Fatalf("authority %d: key ID %q", i, a.KeyID)
		case a.TransparencyLog == "":
			t.Fatalf("authority %d: no transparency log mode", i)
		}
	}
	if len(p.Attestations) != len(obj.Spec.Attestations) {
		t.Fatalf("%d attestations compiled from %d", len(p.Attestations), len(obj.Spec.Attestations))
	}
	for i, a := range p.Attestations {
		if a.PredicateType == "" || len(a.Conditions) != len(obj.Spec.Attestations[i].Conditions) {
			t.Fatalf("attestation %d: %q with %d conditions from %d", i, a.PredicateType, len(a.Conditions), len(obj.Spec.Attestations[i].Conditions))
		}
	}
	if (obj.Spec.TrustedRoot == nil) != (p.TrustedRoot == nil) || (p.TrustedRoot != nil && p.TrustedRoot.Key == "") {
		t.Fatalf("trusted root %+v compiled as %+v", obj.Spec.TrustedRoot, p.TrustedRoot)
	}
}

// Bounds on one condition evaluated on one predicate: far above what any condition within the cost
// limit needs (a few hundred milliseconds and tens of MiB at most; the time bound leaves room for a
// loaded machine), far below what would hurt the manager (its memory limit is 512 MiB; 8 verifications
// run at once).
const (
	fuzzMaxEvalTime  = 30 * time.Second
	fuzzMaxEvalAlloc = 64 << 20
	fuzzMaxPredicate = 256 << 10
)

// fuzzPredicates are the predicates of the vectors' attestations (SLSA provenance and others).
func fuzzPredicates(tb testing.TB) [][]byte {
	tb.Helper()
	var out [][]byte
	for _, dir := range fuzzVectorDirs {
		var files []string
		for _, glob := range []string{"public-good-bundles/*/*.sigstore", "public-good-bundles/*/*.json", "cosign-new-bundle/*.sigstore.json"} {
			m, _ := filepath.Glob(filepath.Join(dir, glob))
			files = append(files, m...)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				continue
			}
			var b struct {
				DSSEEnvelope struct {
					Payload string `json:"payload"`
				} `json:"dsseEnvelope"`
				Predicate json.RawMessage `json:"predicate"`
			}
			if json.Unmarshal(data, &b) != nil {
				continue
			}
			if len(b.Predicate) > 0 { // statement.json
				out = append(out, b.Predicate)
				continue
			}
			payload, err := base64.StdEncoding.DecodeString(b.DSSEEnvelope.Payload)
			if err != nil {
				continue
			}
			var st struct {
				Predicate json.RawMessage `json:"predicate"`
			}
			if json.Unmarshal(payload, &st) == nil && len(st.Predicate) > 0 {
				out = append(out, st.Predicate)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	tb.Log("no Sigstore test vectors found; seeding from the package's own predicates only")
	return nil
}

// fuzzHostileConditions try to make one evaluation slow or large within a short expression.
var fuzzHostileConditions = []string{
	`predicate.a.all(x, predicate.a.all(y, predicate.a.all(z, predicate.a.all(w, x + y + z + w >= 0))))`,
	`[1,2,3,4,5,6,7,8,9,10].map(a, [1,2,3,4,5,6,7,8,9,10].map(b, [1,2,3,4,5,6,7,8,9,10].map(c, [1,2,3,4,5,6,7,8,9,10].map(d, [1,2,3,4,5,6,7,8,9,10].map(e, a*b*c*d*e))))).size() > 0`,
	`'aaaaaaaaaa'.replace('', 'aaaaaaaaaa').replace('', 'aaaaaaaaaa').replace('', 'aaaaaaaaaa').replace('', 'aaaaaaaaaa').replace('', 'aaaaaaaaaa').replace('', 'aaaaaaaaaa').size() > 0`,
	`predicate.s.replace('', predicate.s).replace('', predicate.s).replace('', predicate.s).size() > 0`,
	`base64.encode(bytes(base64.encode(bytes(base64.encode(bytes(base64.encode(bytes(predicate.s)))))))).size() > 0`,
	`lists.range(1000000).map(x, x * 2).size() > 0`,
	`lists.range(1000).map(x, lists.range(1000).map(y, x * y)).flatten().size() > 0`,
	`[predicate.a, predicate.a, predicate.a, predicate.a].flatten().sort().size() > 0`,
	`'%s%s%s%s'.format([predicate, predicate, predicate, predicate]).size() > 0`,
	`predicate.s.split('').join(predicate.s).size() > 0`,
	`sets.equivalent(predicate.a, predicate.a.reverse())`,
	`predicate.s.matches('^(a+)+$')`,
	`string(predicate).size() > 0`,
	`predicate.map(k, predicate[k]).size() >= 0`,
	`predicate.a.distinct().size() > 0`,
	`predicate.s.indexOf(predicate.s + 'b') >= 0`,
	`dyn(predicate).a[0] == predicate["a"][0]`,
	`has(predicate.buildDefinition.externalParameters.workflow.ref) && predicate.buildDefinition.externalParameters.workflow.ref.startsWith("refs/tags/")`,
}

// FuzzCondition: a CEL condition compiles (with the policy) or is refused as the condition's field;
// evaluated on any predicate an attestation can carry, decoded as verification decodes it, it returns
// in bounded time and memory, a false result when it errs, and the same result every time.
func FuzzCondition(f *testing.F) {
	conditions := []string{
		`predicate.runDetails.builder.id == "https://github.com/actions/runner"`,
		`predicate.buildDefinition.buildType.startsWith("https://actions.github.io/")`,
		"true", "predicate.builder.id ==", `"yes"`, "1", "predicate",
	}
	for _, p := range fuzzSamplePolicies(f) {
		for _, a := range p.Spec.Attestations {
			conditions = append(conditions, a.Conditions...)
		}
	}
	predicates := [][]byte{
		[]byte(`{"buildDefinition":{"buildType":"https://actions.github.io/buildtypes/workflow/v1"},"runDetails":{"builder":{"id":"https://github.com/actions/runner"}}}`),
		[]byte(`{"runDetails":{"builder":{"id":"https://evil.example/builder"}}}`),
		[]byte(`null`), []byte(`[]`), []byte(`"s"`), []byte(``), []byte(`{"a":1e308,"s":-0}`),
	}
	predicates = append(predicates, fuzzPredicates(f)...)
	for _, c := range conditions {
		for _, p := range predicates {
			f.Add(c, p)
		}
	}
	hostile := [][]byte{
		[]byte(`{"a":[` + strings.TrimSuffix(strings.Repeat("1,", 100), ",") + `],"s":"` + strings.Repeat("a", 100) + `"}`),
		[]byte(`{"a":[` + strings.TrimSuffix(strings.Repeat("[1,2],", 200), ",") + `],"s":"` + strings.Repeat("ab", 500) + `"}`),
		[]byte(strings.Repeat(`{"a":`, 500) + "1" + strings.Repeat("}", 500)),
	}
	for _, c := range fuzzHostileConditions {
		for _, p := range hostile {
			f.Add(c, p)
		}
	}
	f.Fuzz(func(t *testing.T, condition string, predicateJSON []byte) {
		if len(condition) > 4096 || len(predicateJSON) > fuzzMaxPredicate {
			return // beyond the CRD's bound on a condition, or the predicate bound of this target
		}
		obj := &sigwatchv1alpha1.ImageSignaturePolicy{ObjectMeta: metav1.ObjectMeta{Name: "cel"},
			Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{
				Images:      []sigwatchv1alpha1.ImagePattern{"ghcr.io/yourorg/**"},
				Authorities: []sigwatchv1alpha1.Authority{{Name: "k", Key: &sigwatchv1alpha1.KeyAuthority{PublicKey: fuzzPEM}}},
				Attestations: []sigwatchv1alpha1.Attestation{{Name: "slsa", PredicateType: "https://slsa.dev/provenance/v1",
					Conditions: []string{fuzzClip(condition, 4096)}}},
			}}
		p, err := Compile(obj, Inputs{})
		if err != nil {
			if f := fuzzField(err); f != "spec.attestations[0].conditions[0]" {
				t.Fatalf("a condition that does not compile is reported on %q: %v", f, err)
			}
			return
		}
		var predicate any
		if len(predicateJSON) > 0 {
			if err := json.Unmarshal(predicateJSON, &predicate); err != nil {
				return // verification stops at a predicate that does not parse
			}
		}
		c := p.Attestations[0].Conditions[0]
		ok, err := fuzzEval(t, c, predicate)
		if err != nil && ok {
			t.Fatalf("condition %q erred (%v) and returned true", c.Source, err)
		}
		ok2, err2 := fuzzEval(t, c, predicate)
		if ok2 != ok || (err == nil) != (err2 == nil) {
			t.Fatalf("condition %q: %v (%v), then %v (%v)", c.Source, ok, err, ok2, err2)
		}
	})
}

// fuzzEval evaluates c with a deadline and checks the time and memory it took.
func fuzzEval(t *testing.T, c Condition, predicate any) (bool, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), fuzzMaxEvalTime)
	defer cancel()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	ok, err := c.Eval(ctx, predicate)
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	if took >= fuzzMaxEvalTime {
		t.Fatalf("condition %q took %v", c.Source, took)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > fuzzMaxEvalAlloc {
		t.Fatalf("condition %q allocated %d MiB in one evaluation", c.Source, alloc>>20)
	}
	return ok, err
}
