package controllers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/yaml"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/imageref"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/internal/trust"
	"github.com/sigwatch/sigwatch/internal/verification"
)

// crd reads a generated CRD of config/crd/bases.
func crd(t *testing.T, file string) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	data, err := os.ReadFile("../config/crd/bases/" + file)
	if err != nil {
		t.Fatal(err)
	}
	c := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(data, c); err != nil {
		t.Fatal(err)
	}
	return c
}

// statusValidator validates objects against a CRD's schema as the API server does (structural schema;
// the CEL rules, which the status has none of, are not run).
func statusValidator(t *testing.T, file string) validation.SchemaValidator {
	t.Helper()
	internal := &apiextensions.JSONSchemaProps{}
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(crd(t, file).Spec.Versions[0].Schema.OpenAPIV3Schema, internal, nil); err != nil {
		t.Fatal(err)
	}
	v, _, err := validation.NewSchemaValidator(internal)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// hostileVerifier answers with what a hostile registry and certificate can make the engine report:
// huge claims, many signatures.
type hostileVerifier struct{}

func (hostileVerifier) Verify(_ context.Context, req verification.Request) *verification.Result {
	res := &verification.Result{Image: req.Image}
	for _, p := range req.Policies {
		res.Policies = append(res.Policies, verification.PolicyResult{Policy: p.Name, Result: sigwatchv1alpha1.PolicyFailed,
			Reason: sigwatchv1alpha1.UntrustedSignerReason, Message: strings.Repeat("ü", 5000), Authority: "ci"})
	}
	for i := range 40 {
		res.Signatures = append(res.Signatures, verification.Signature{Format: sigwatchv1alpha1.SignatureFormatBundle,
			Subject: strings.Repeat("s", 70000), Issuer: "https://" + strings.Repeat("i", 5000), KeyID: strings.Repeat("k", 300),
			GitHubWorkflowRepository: strings.Repeat("r", 3000), GitHubWorkflowRef: "refs/" + strings.Repeat("é", 3000),
			Claims:         hostileClaims(),
			ManifestDigest: fmt.Sprintf("sha256:%064d", i), Reason: sigwatchv1alpha1.UntrustedSignerReason, Message: "no"})
	}
	return res
}

// hostileClaims sets every certificate claim, each far longer than the API allows.
func hostileClaims() *sigwatchv1alpha1.CertificateClaims {
	var c sigwatchv1alpha1.CertificateClaims
	v := reflect.ValueOf(&c).Elem()
	for i := range v.NumField() {
		v.Field(i).SetString(strings.Repeat("\u202e", 3000))
	}
	return &c
}

// TestStatusStaysWithinTheCRDBounds: whatever the registry, the certificates, the pods and the
// annotations hold, the status the controller writes validates against the generated CRD (else the
// status could never be written, and the verdict would freeze).
func TestStatusStaysWithinTheCRDBounds(t *testing.T) {
	g := NewWithT(t)
	si := managedSI()
	si.Annotations = map[string]string{sigwatchv1alpha1.ReverifyAnnotation: strings.Repeat("x", 10000)}
	objs := []client.Object{si}
	for i := range 70 {
		p := keyPolicyObj(t, fmt.Sprintf("policy-%02d-%s", i, strings.Repeat("n", 200)))
		objs = append(objs, p)
	}
	for i := range 300 {
		pod := runningPod(fmt.Sprintf("web-%03d", i))
		pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "example.com/v1", Kind: "Very" + strings.Repeat("Long", 40) + "Kind",
			Name: fmt.Sprintf("owner-%03d-%s", i, strings.Repeat("o", 250)), UID: "u", Controller: ptr.To(true)}}
		for c := range 70 {
			pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: fmt.Sprintf("c%02d", c), Image: stepRepo + ":v1"})
			pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, corev1.ContainerStatus{Name: fmt.Sprintf("c%02d", c),
				ImageID: "docker-pullable://" + stepRepo + "@" + dig})
		}
		objs = append(objs, pod)
	}
	e := newStepEnv(t, interceptor.Funcs{}, objs...)
	e.si.Verifier = hostileVerifier{}
	e.mustReconcile()
	got := e.get()

	g.Expect(got.Status.Policies).To(HaveLen(64))
	g.Expect(got.Status.Workloads).To(HaveLen(256))
	g.Expect(got.Status.Workloads[0].Containers).To(HaveLen(64))
	g.Expect(got.Status.LastHandledReverify).To(HavePrefix("sha256:"))
	g.Expect(got.Status.Signatures[0].Claims).NotTo(BeNil())
	g.Expect(len(got.Status.Signatures[0].Claims.SourceRepositoryIdentifier)).To(BeNumerically("<=", 512))
	g.Expect(got.Status.Signatures[0].Claims.BuildSignerURI).NotTo(ContainSubstring("\u202e"), "a bidirectional override is not shown")
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(got)
	g.Expect(err).NotTo(HaveOccurred())
	res := statusValidator(t, "sigwatch.dev_signedimages.yaml").Validate(u)
	g.Expect(res.Errors).To(BeEmpty(), "the written status validates against the CRD")

	// The reverify annotation is still honoured once: the next visit is not forced again.
	e.clock.Step(1)
	rv := e.get().ResourceVersion
	e.mustReconcile()
	g.Expect(e.get().ResourceVersion).To(Equal(rv), "a long reverify value is recorded by its hash and not acted on twice")

	// And the validator does reject what is out of bounds, so the check above means something.
	got.Status.Summary.Signer = strings.Repeat("s", 1025)
	u, err = runtime.DefaultUnstructuredConverter.ToUnstructured(got)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(statusValidator(t, "sigwatch.dev_signedimages.yaml").Validate(u).Errors).NotTo(BeEmpty())
}

// TestStatusSchemasAreBounded: every string and list in both statuses has a maximum (an unbounded
// status is an etcd size and CEL cost risk), and conditions come first. kube-api-linter (make lint)
// checks the Go types; this checks the generated CRDs that the API server enforces.
func TestStatusSchemasAreBounded(t *testing.T) {
	for _, file := range []string{"sigwatch.dev_signedimages.yaml", "sigwatch.dev_imagesignaturepolicies.yaml"} {
		t.Run(file, func(t *testing.T) {
			g := NewWithT(t)
			status := crd(t, file).Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["status"]
			var unbounded []string
			walkSchema("status", status, func(path string, s apiextensionsv1.JSONSchemaProps) {
				switch {
				case s.Type == "string" && s.MaxLength == nil && s.Format != "date-time" && len(s.Enum) == 0:
					unbounded = append(unbounded, path)
				case s.Type == "array" && s.MaxItems == nil:
					unbounded = append(unbounded, path)
				}
			})
			g.Expect(unbounded).To(BeEmpty(), "strings without maxLength and lists without maxItems")
		})
	}
	for _, typ := range []any{sigwatchv1alpha1.SignedImageStatus{}, sigwatchv1alpha1.ImageSignaturePolicyStatus{}} {
		first := fmt.Sprintf("%T", typ)
		g := NewWithT(t)
		g.Expect(firstField(typ)).To(Equal("Conditions"), "%s: conditions come first", first)
	}
}

func walkSchema(path string, s apiextensionsv1.JSONSchemaProps, visit func(string, apiextensionsv1.JSONSchemaProps)) {
	visit(path, s)
	for name, p := range s.Properties {
		walkSchema(path+"."+name, p, visit)
	}
	if s.Items != nil && s.Items.Schema != nil {
		walkSchema(path+"[]", *s.Items.Schema, visit)
	}
}

func firstField(v any) string { return reflect.TypeOf(v).Field(0).Name }

// TestPodEventNotesFitTheEventsAPI: the Warning on a pod names the image and the verdict; with the
// longest image name and message the API allows, the note stays within the Events API's 1024 bytes.
func TestPodEventNotesFitTheEventsAPI(t *testing.T) {
	g := NewWithT(t)
	rec := events.NewFakeRecorder(10)
	r := &SignedImageReconciler{Recorder: rec, NoMatch: NoMatchIgnore}
	si := managedSI()
	si.Spec.Image = "registry.example.com/" + strings.Repeat("a", 234) // 255 characters, the CRD's maximum
	si.Status.Summary.ShortDigest = dig[7:19]
	setConditions(&si.Status, verdict{status: metav1.ConditionFalse, reason: sigwatchv1alpha1.UntrustedSignerReason,
		message: strings.Repeat("ü", 20000)}, 1, NoMatchIgnore, time.Now())
	r.emitEvents(context.Background(), si, nil, []corev1.Pod{*runningPod("web-1")})
	g.Expect(rec.Events).To(HaveLen(2), "one on the SignedImage, one on the pod")
	for range 2 {
		ev := <-rec.Events
		note := strings.TrimPrefix(ev, "Warning "+EventReasonVerificationFailed+" ")
		g.Expect(len(note)).To(BeNumerically("<=", 1024), "%d bytes", len(note))
		g.Expect(utf8.ValidString(note)).To(BeTrue(), "cut at a character boundary")
	}
}

func TestMatchPolicy(t *testing.T) {
	embedded, err := trust.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	p := keyPolicyObj(t, "p")
	cp, err := policy.Compile(p, policy.Inputs{})
	if err != nil {
		t.Fatal(err)
	}
	ready := &ResolvedPolicy{Policy: cp, Root: embedded}
	notReady := &policy.Error{Policy: "p", Reason: sigwatchv1alpha1.KeyUnavailableReason, Field: "spec.authorities[0].key.secretRef", Err: errors.New("not found")}
	hiccup := &transientError{err: errors.New("the server was unable to return a response in the time allotted")}
	for _, tc := range []struct {
		name       string
		rp         *ResolvedPolicy
		err        error
		override   time.Duration
		wantReason string
		wantMsg    string
		wantIntvl  time.Duration
	}{
		{"ready: the policy's interval", ready, nil, 0, "", "", time.Hour},
		{"ready, with an override", ready, nil, 2 * time.Second, "", "", 2 * time.Second},
		{"not ready: settled", nil, notReady, 0, sigwatchv1alpha1.PolicyNotReadyReason, "the policy is not ready (KeyUnavailable): spec.authorities[0].key.secretRef: not found", 0},
		{"inputs not read just now: transient", nil, hiccup, 0, sigwatchv1alpha1.VerificationErrorReason, "could not read the policy's inputs (retrying): the server was unable", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			m := matchPolicy(p, tc.rp, tc.err, tc.override)
			g.Expect(m.name).To(Equal("p"))
			g.Expect(m.errReason).To(Equal(tc.wantReason))
			g.Expect(m.errMessage).To(HavePrefix(tc.wantMsg))
			g.Expect(m.interval).To(Equal(tc.wantIntvl))
			g.Expect(m.fingerprint).To(HaveLen(16))
			g.Expect(transientReasons[m.errReason]).To(Equal(tc.err != nil && IsTransient(tc.err)), "only the transient one is retried on a timer")
		})
	}
	g := NewWithT(t)
	a, b := matchPolicy(p, ready, nil, 0), matchPolicy(p, nil, notReady, 0)
	g.Expect(a.fingerprint).NotTo(Equal(b.fingerprint), "becoming not ready is a change that re-verifies")
	g.Expect(matchPolicy(p, nil, hiccup, 0).fingerprint).NotTo(Equal(a.fingerprint))
}

// TestBrokenSelectorIsPolicyNotReady: a policy whose namespaceSelector does not compile fails closed
// (finding 5 of issue 10). It covers the images of its globs in any namespace, and the match is the
// not-ready one, whatever the resolver answered (its own InvalidPolicy, a cached ready policy, a read
// that failed just now), so that the image is Unknown/PolicyNotReady, never NoMatchingPolicy.
func TestBrokenSelectorIsPolicyNotReady(t *testing.T) {
	embedded, err := trust.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	cp, err := policy.Compile(keyPolicyObj(t, "p"), policy.Inputs{})
	if err != nil {
		t.Fatal(err)
	}
	cachedReady := &ResolvedPolicy{Policy: cp, Root: embedded}
	hiccup := &transientError{err: errors.New("the server was unable to return a response in the time allotted")}
	store := &PolicyStore{PublicGood: func(context.Context) (*trust.Root, error) { return embedded, nil }}
	req := func(op metav1.LabelSelectorOperator, values ...string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: op, Values: values}}}
	}
	selectors := map[string]*metav1.LabelSelector{
		"invalid operator":   req("Sometimes", "a"),
		"In without values":  req(metav1.LabelSelectorOpIn),
		"Exists with values": req(metav1.LabelSelectorOpExists, "a"),
		"invalid value":      {MatchLabels: map[string]string{"team": "a/b"}},
	}
	const repo = "ghcr.io/yourorg/app"
	for name, sel := range selectors {
		p := keyPolicyObj(t, "broken")
		p.Spec.NamespaceSelector = sel
		storeRP, storeErr := store.Resolve(context.Background(), p)
		for _, answer := range []struct {
			name string
			rp   *ResolvedPolicy
			err  error
		}{
			{"the store's answer", storeRP, storeErr},
			{"a cached ready policy", cachedReady, nil},
			{"a transient read error", nil, hiccup},
		} {
			t.Run(name+", "+answer.name, func(t *testing.T) {
				g := NewWithT(t)
				g.Expect(policy.Covers(p, repo, labels.Set{"team": "b"})).To(BeTrue(), "the policy covers its globs in any namespace")

				m := matchPolicy(p, answer.rp, answer.err, 0)
				g.Expect(m.name).To(Equal("broken"))
				g.Expect(m.errReason).To(Equal(sigwatchv1alpha1.PolicyNotReadyReason))
				g.Expect(m.errMessage).To(ContainSubstring("(InvalidPolicy): spec.namespaceSelector"))
				g.Expect(transientReasons[m.errReason]).To(BeFalse(), "a broken spec is settled, not retried on a timer")

				var st sigwatchv1alpha1.SignedImageStatus
				now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
				res := &verification.Result{Image: imageref.Image{Repository: repo, Digest: dig}} // no ready policy to verify
				v := applyResult(&st, res, []matchedPolicy{m}, now)
				setConditions(&st, v, 1, NoMatchIgnore, now)
				verified := meta.FindStatusCondition(st.Conditions, sigwatchv1alpha1.VerifiedCondition)
				g.Expect(verified.Status).To(Equal(metav1.ConditionUnknown))
				g.Expect(verified.Reason).To(Equal(sigwatchv1alpha1.PolicyNotReadyReason), "never NoMatchingPolicy")
				g.Expect(meta.IsStatusConditionTrue(st.Conditions, sigwatchv1alpha1.ReadyCondition)).To(BeFalse())
				g.Expect(meta.IsStatusConditionTrue(st.Conditions, sigwatchv1alpha1.StalledCondition)).To(BeTrue())
			})
		}
	}
}
