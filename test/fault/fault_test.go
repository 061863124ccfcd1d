//go:build e2e

// Package fault runs the real manager binary against a real API server and a registry behind a fault
// proxy, and checks that faults never produce a wrong verdict: a signed image is never False, an unsigned
// or wrongly signed one never True, whatever the registry, the API server or the manager's own death do.
package fault

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/test/envtest"
	testregistry "github.com/sigwatch/sigwatch/test/registry"
	"github.com/sigwatch/sigwatch/test/sigstore"
)

// expectation is what an image must never be.
type image struct {
	name   string
	digest name.Digest
	signed bool // true: never False, and True once settled; false: never True, and False once settled
}

// env is the suite's world.
type env struct {
	t       *testing.T
	cp      *envtest.Environment
	reg     *testregistry.Registry
	proxy   *proxy
	bin     string
	dir     string
	kubecfg string
	manager *exec.Cmd
	images  []image
	// byDigest tells what a SignedImage's digest must be.
	byDigest map[string]image
	watch    *recorder
}

const (
	namespaces = 3
	// faultPeriod is how long the proxy injects faults: over two re-verification cycles (1m).
	faultPeriod = 150 * time.Second
	// settle bounds how soon every verdict is right once faults stop: two retry periods (the retry
	// backoff is capped at the policy's 1m interval) and some slack.
	settle = 150 * time.Second
)

func TestFaultInjection(t *testing.T) {
	g := NewWithT(t)
	e := setup(t)
	ctx := context.Background()

	t.Run("start: every verdict right", func(t *testing.T) {
		e.startManager()
		e.waitAllRight(t, 2*time.Minute)
	})
	t.Run("registry faults", func(t *testing.T) {
		e.proxy.faulty.Store(true)
		// Besides the policy's 1m re-verification, force one every 15s, so that many requests meet
		// faults.
		for end := time.Now().Add(faultPeriod); time.Now().Before(end); time.Sleep(15 * time.Second) {
			e.forceReverification(t, ctx)
		}
		e.proxy.faulty.Store(false)
		e.waitAllRight(t, settle)
	})
	t.Run("API server stopped and started again", func(t *testing.T) {
		start, err := e.cp.StopAPIServer()
		g.Expect(err).NotTo(HaveOccurred())
		time.Sleep(20 * time.Second)
		g.Expect(start()).To(Succeed())
		e.watch.resume()
		// Nothing lost, and the manager takes new work by itself.
		e.runImage(t, ctx, "after-restart", e.images[0], 0)
		e.waitAllRight(t, settle)
	})
	t.Run("manager killed in the middle of a cycle", func(t *testing.T) {
		// Force a re-verification of everything, and kill the manager while it works through it.
		e.forceReverification(t, ctx)
		time.Sleep(300 * time.Millisecond)
		g.Expect(syscall.Kill(-e.manager.Process.Pid, syscall.SIGKILL)).To(Succeed())
		_ = e.manager.Wait()
		e.startManager()
		e.waitAllRight(t, settle)
		time.Sleep(5 * time.Second) // any late duplicate announcement would show now
	})

	// Every status ever seen, and every Event.
	wrong := e.watch.wrong()
	transitions := e.watch.transitions()
	dups := e.duplicateEvents(t, ctx)
	requests, faults := e.proxy.counts()
	total := 0
	var kinds []string
	for k, n := range faults {
		total += n
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(kinds)
	t.Logf("fault suite: %d registry requests, %d faults injected (%s), %d status updates seen, %d verdict transitions, %d duplicate Events, wrong verdicts = %d",
		requests, total, strings.Join(kinds, ", "), e.watch.updates(), transitions, len(dups), len(wrong))
	for _, w := range wrong {
		t.Errorf("wrong verdict: %s", w)
	}
	for _, d := range dups {
		t.Errorf("duplicate Event: %s", d)
	}
	g.Expect(total).To(BeNumerically(">", 0), "faults were injected")
}

// forceReverification asks for a re-verification of every SignedImage (the reverify annotation).
func (e *env) forceReverification(t *testing.T, ctx context.Context) {
	t.Helper()
	g := NewWithT(t)
	var list sigwatchv1alpha1.SignedImageList
	g.Expect(e.cp.Client.List(ctx, &list)).To(Succeed())
	for i := range list.Items {
		si := &list.Items[i]
		patch := client.MergeFrom(si.DeepCopy())
		if si.Annotations == nil {
			si.Annotations = map[string]string{}
		}
		si.Annotations[sigwatchv1alpha1.ReverifyAnnotation] = time.Now().Format(time.RFC3339Nano)
		g.Expect(e.cp.Client.Patch(ctx, si, patch)).To(Succeed())
	}
}

func setup(t *testing.T) *env {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	e := &env{t: t, dir: t.TempDir(), byDigest: map[string]image{}}
	e.bin = filepath.Join(e.dir, "sigwatch")
	build := exec.Command("go", "build", "-o", e.bin, "./cmd/sigwatch")
	build.Dir = envtest.RepoRoot()
	out, err := build.CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), string(out))

	// Without the watch cache, watches are served from etcd's history, which outlives an API server
	// restart: the recorder's watch resumes from the last resourceVersion it saw.
	cp, err := envtest.StartWith(map[string]string{"watch-cache": "false"})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = cp.Stop() })
	e.cp = cp
	kc, err := cp.KubeConfig()
	g.Expect(err).NotTo(HaveOccurred())
	e.kubecfg = filepath.Join(e.dir, "kubeconfig")
	g.Expect(os.WriteFile(e.kubecfg, kc, 0o600)).To(Succeed())

	e.reg = testregistry.Start(t, true)
	p, err := startProxy(e.reg.Host, 0.3)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(p.stop)
	e.proxy = p

	// Images, pushed and signed directly; the manager reads them through the proxy.
	w := &sigstore.Writer{Registry: e.reg.Host}
	team, err := sigstore.NewKeySigner(nil)
	g.Expect(err).NotTo(HaveOccurred())
	other, err := sigstore.NewKeySigner(nil)
	g.Expect(err).NotTo(HaveOccurred())
	for _, spec := range []struct {
		name   string
		sign   func(d name.Digest) error
		signed bool
	}{
		{"signed-bundle", func(d name.Digest) error { _, err := w.SignBundle(ctx, d, team, sigstore.SignOptions{}); return err }, true},
		{"signed-legacy", func(d name.Digest) error { _, err := w.SignLegacy(ctx, d, team, sigstore.SignOptions{}); return err }, true},
		{"unsigned", func(name.Digest) error { return nil }, false},
		{"wrongly-signed", func(d name.Digest) error { _, err := w.SignBundle(ctx, d, other, sigstore.SignOptions{}); return err }, false},
	} {
		d, err := w.PushRandomImage(ctx, "fault/"+spec.name)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(spec.sign(d)).To(Succeed())
		viaProxy, err := name.NewDigest(p.Host + "/fault/" + spec.name + "@" + d.DigestStr())
		g.Expect(err).NotTo(HaveOccurred())
		img := image{name: spec.name, digest: viaProxy, signed: spec.signed}
		e.images = append(e.images, img)
		e.byDigest[d.DigestStr()] = img
	}

	g.Expect(cp.Client.Create(ctx, &sigwatchv1alpha1.ImageSignaturePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "team"},
		Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{
			Images:           []sigwatchv1alpha1.ImagePattern{sigwatchv1alpha1.ImagePattern(p.Host + "/fault/**")},
			ReverifyInterval: &metav1.Duration{Duration: time.Minute},
			Authorities: []sigwatchv1alpha1.Authority{{Name: "team-key",
				Key:             &sigwatchv1alpha1.KeyAuthority{PublicKey: string(team.PublicKeyPEM())},
				TransparencyLog: &sigwatchv1alpha1.TransparencyLogPolicy{Mode: sigwatchv1alpha1.TransparencyLogDisabled}}},
		},
	})).To(Succeed())

	e.watch = startRecorder(t, cp, e.byDigest)
	for i := range namespaces {
		for j, img := range e.images {
			e.runImage(t, ctx, fmt.Sprintf("team-%d", i), img, j)
		}
	}
	return e
}

// runImage runs img in a Deployment of namespace ns (made when missing).
func (e *env) runImage(t *testing.T, ctx context.Context, ns string, img image, n int) {
	t.Helper()
	g := NewWithT(t)
	err := e.cp.Client.Create(ctx, envtest.Namespace(ns, nil))
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		g.Expect(err).NotTo(HaveOccurred())
	}
	ref := img.digest.Context().String()
	_, err = envtest.RunDeployment(ctx, e.cp.Client, ns, fmt.Sprintf("%s-%d", img.name, n), ref, img.digest.String())
	g.Expect(err).NotTo(HaveOccurred())
}

func (e *env) startManager() {
	e.t.Helper()
	log, err := os.OpenFile(filepath.Join(e.dir, "manager.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(e.bin, "manager", "--kubeconfig", e.kubecfg, "--leader-elect=false", "--metrics-bind-address=0",
		"--health-probe-bind-address=0", "--insecure-registry", "127.0.0.1:*", "--offline-trust-root", "--registry-timeout=4s")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.manager = cmd
	e.t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = log.Close()
		if e.t.Failed() {
			if b, err := os.ReadFile(filepath.Join(e.dir, "manager.log")); err == nil {
				e.t.Logf("manager log (last 4 KiB):\n%s", tail(b, 4096))
			}
		}
	})
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// waitAllRight waits until every SignedImage of every image shows its settled verdict.
func (e *env) waitAllRight(t *testing.T, within time.Duration) {
	t.Helper()
	want := 0
	var nss corev1.NamespaceList
	NewWithT(t).Expect(e.cp.Client.List(context.Background(), &nss)).To(Succeed())
	NewWithT(t).Eventually(func(g Gomega) {
		var list sigwatchv1alpha1.SignedImageList
		g.Expect(e.cp.Client.List(context.Background(), &list)).To(Succeed())
		var pods corev1.PodList
		g.Expect(e.cp.Client.List(context.Background(), &pods)).To(Succeed())
		want = 0
		seen := map[string]bool{}
		for _, p := range pods.Items {
			for _, cs := range p.Status.ContainerStatuses {
				seen[p.Namespace+"|"+cs.ImageID] = true
			}
		}
		want = len(seen)
		right := 0
		for _, si := range list.Items {
			img, ok := e.byDigest[si.Spec.Digest]
			g.Expect(ok).To(BeTrue(), "a SignedImage of an unknown digest: %s", si.Spec.Digest)
			c := meta.FindStatusCondition(si.Status.Conditions, sigwatchv1alpha1.VerifiedCondition)
			if c != nil && c.Status == settled(img) {
				right++
			}
		}
		g.Expect(right).To(Equal(want), "SignedImages with their settled verdict")
	}).WithTimeout(within).WithPolling(2 * time.Second).Should(Succeed())
}

func settled(img image) metav1.ConditionStatus {
	if img.signed {
		return metav1.ConditionTrue
	}
	return metav1.ConditionFalse
}

// duplicateEvents lists transition Events announced more often than the watch saw the transition.
func (e *env) duplicateEvents(t *testing.T, ctx context.Context) []string {
	t.Helper()
	var evs corev1.EventList
	NewWithT(t).Expect(e.cp.Client.List(ctx, &evs)).To(Succeed())
	announced := map[string]int{}
	for _, ev := range evs.Items {
		if ev.InvolvedObject.Kind != "SignedImage" {
			continue
		}
		switch ev.Reason {
		case "Verified", "VerificationFailed", "VerificationUnknown":
		default:
			continue
		}
		obj := ev.InvolvedObject
		n := int(ev.Count)
		if ev.Series != nil && int(ev.Series.Count) > n {
			n = int(ev.Series.Count)
		}
		announced[obj.Namespace+"/"+obj.Name+"|"+ev.Reason] += max(n, 1)
	}
	seen := e.watch.transitionsByReason()
	var out []string
	for k, n := range announced {
		if n > seen[k] {
			out = append(out, fmt.Sprintf("%s announced %d times, the transition seen %d times", k, n, seen[k]))
		}
	}
	sort.Strings(out)
	return out
}

// recorder watches every SignedImage change (every resourceVersion, resuming after the API server
// restarts) and checks each status against what its digest must never be.
type recorder struct {
	t        *testing.T
	cp       *envtest.Environment
	byDigest map[string]image

	mu      sync.Mutex
	rv      string
	last    map[string]metav1.ConditionStatus // object -> Verified status
	bad     []string
	trans   map[string]int // object|event reason -> transitions into it
	total   int
	changes int
	restart chan struct{}
}

func startRecorder(t *testing.T, cp *envtest.Environment, byDigest map[string]image) *recorder {
	r := &recorder{t: t, cp: cp, byDigest: byDigest, last: map[string]metav1.ConditionStatus{}, trans: map[string]int{}, restart: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go r.run(ctx)
	return r
}

func (r *recorder) resume() {
	select {
	case r.restart <- struct{}{}:
	default:
	}
}

func (r *recorder) run(ctx context.Context) {
	wc, ok := r.cp.Client.(client.WithWatch)
	if !ok {
		var err error
		if wc, err = client.NewWithWatch(r.cp.Config, client.Options{Scheme: r.cp.Scheme}); err != nil {
			r.fail("watch client: %v", err)
			return
		}
	}
	for ctx.Err() == nil {
		r.mu.Lock()
		rv := r.rv
		r.mu.Unlock()
		opts := []client.ListOption{}
		if rv != "" {
			opts = append(opts, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv}})
		}
		w, err := wc.Watch(ctx, &sigwatchv1alpha1.SignedImageList{}, opts...)
		if err != nil {
			select { // the API server is down: wait for it
			case <-ctx.Done():
				return
			case <-r.restart:
			case <-time.After(time.Second):
			}
			continue
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				if st, ok := ev.Object.(*metav1.Status); ok && st.Code == 410 {
					r.fail("the watch lost history (410 Gone after %s): not every resourceVersion was seen", rv)
					r.mu.Lock()
					r.rv = "" // go on from now, the failure recorded
					r.mu.Unlock()
				}
				break
			}
			si, ok := ev.Object.(*sigwatchv1alpha1.SignedImage)
			if !ok {
				continue
			}
			r.see(ev.Type, si)
		}
		w.Stop()
	}
}

func (r *recorder) see(typ watch.EventType, si *sigwatchv1alpha1.SignedImage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rv = si.ResourceVersion
	r.total++
	key := si.Namespace + "/" + si.Name
	if typ == watch.Deleted {
		delete(r.last, key)
		return
	}
	img, ok := r.byDigest[si.Spec.Digest]
	if !ok {
		r.bad = append(r.bad, fmt.Sprintf("%s: a SignedImage of unknown digest %s", key, si.Spec.Digest))
		return
	}
	c := meta.FindStatusCondition(si.Status.Conditions, sigwatchv1alpha1.VerifiedCondition)
	if c == nil {
		return
	}
	if img.signed && c.Status == metav1.ConditionFalse || !img.signed && c.Status == metav1.ConditionTrue {
		r.bad = append(r.bad, fmt.Sprintf("%s (%s) at resourceVersion %s: Verified=%s %s: %s", key, img.name, si.ResourceVersion, c.Status, c.Reason, c.Message))
	}
	if prev, ok := r.last[key]; !ok || prev != c.Status {
		r.changes++
		reason := map[metav1.ConditionStatus]string{metav1.ConditionTrue: "Verified", metav1.ConditionFalse: "VerificationFailed", metav1.ConditionUnknown: "VerificationUnknown"}[c.Status]
		r.trans[key+"|"+reason]++
	}
	r.last[key] = c.Status
}

func (r *recorder) fail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bad = append(r.bad, fmt.Sprintf(format, args...))
}

func (r *recorder) wrong() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bad...)
}

func (r *recorder) transitions() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changes
}

func (r *recorder) updates() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

func (r *recorder) transitionsByReason() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for k, v := range r.trans {
		out[k] = v
	}
	return out
}
