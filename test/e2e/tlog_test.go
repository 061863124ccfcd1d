//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/controllers"
	"github.com/sigwatch/sigwatch/test/envtest"
	"github.com/sigwatch/sigwatch/test/stack"
)

// logProxy serves the stack's Rekor v2 tiles as a CDN or a mirror would, and can misbehave: be down,
// or serve a checkpoint of its choosing (an older one: a rollback; a tampered one: a forged head).
type logProxy struct {
	target string
	mu     sync.Mutex
	down   bool
	served []byte
	srv    *httptest.Server
}

func newLogProxy(t *testing.T, target string) *logProxy {
	p := &logProxy{target: target}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *logProxy) set(down bool, checkpoint []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down, p.served = down, checkpoint
}

func (p *logProxy) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	down, served := p.down, p.served
	p.mu.Unlock()
	switch {
	case down:
		http.Error(w, "the log is down", http.StatusServiceUnavailable)
		return
	case served != nil && r.URL.Path == "/checkpoint":
		_, _ = w.Write(served)
		return
	}
	resp, err := http.Get(p.target + r.URL.Path)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer func() { _ = resp.Body.Close() }()
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// TestLiveTransparencyLog: with the real Rekor v2 of the local stack, behind a proxy that plays its CDN,
// each re-verification proves the signature's entry in the log's current checkpoint and that checkpoint
// consistent with the last one verified, which a restarted manager continues from. An older checkpoint
// served again (a rollback) is caught against the persisted one and kept as evidence; Monitor reports it
// and keeps the verdict, Require fails the image. Deleting the TransparencyLog trusts the log again. An
// outage is Unknown under Require and never False under Monitor; a forged checkpoint proves nothing.
func TestLiveTransparencyLog(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := s.env.Client
	proxy := newLogProxy(t, s.stack.RekorTilesURL)
	g.Expect(c.DeleteAllOf(ctx, &sigwatchv1alpha1.TransparencyLog{})).To(Succeed()) // other tests' managers read the log too

	img, err := s.push(ctx, "yourorg/tlog:v1")
	g.Expect(err).NotTo(HaveOccurred())
	_, err = s.stack.Sign(ctx, img.String(), releaseClaims, stack.SignOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	grow := func(tag string) {
		t.Helper()
		more, err := s.push(ctx, "yourorg/tlog-more:"+tag)
		g.Expect(err).NotTo(HaveOccurred())
		_, err = s.stack.Sign(ctx, more.String(), releaseClaims, stack.SignOptions{})
		g.Expect(err).NotTo(HaveOccurred())
	}

	g.Expect(c.Create(ctx, envtest.Namespace("live-tlog-trust", nil))).To(Succeed())
	g.Expect(c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "live-tlog-trust", Name: "sigstore"},
		Data: map[string]string{"trusted_root.json": string(s.stack.TrustedRootJSON())}})).To(Succeed())
	spec := releasePolicySpec(releaseIdentity())
	spec.Images = []sigwatchv1alpha1.ImagePattern{sigwatchv1alpha1.ImagePattern(s.reg.Host + "/yourorg/tlog")}
	spec.TrustedRoot = &sigwatchv1alpha1.TrustedRootSource{ConfigMapRef: sigwatchv1alpha1.ConfigMapKeyReference{Namespace: "live-tlog-trust", Name: "sigstore"}}
	p := &sigwatchv1alpha1.ImageSignaturePolicy{ObjectMeta: metav1.ObjectMeta{Name: "live-tlog"}, Spec: spec}
	g.Expect(c.Create(ctx, p)).To(Succeed())
	t.Cleanup(func() { _ = c.Delete(ctx, p) })
	setOnline := func(online sigwatchv1alpha1.OnlineLogCheck) {
		t.Helper()
		g.Eventually(func(g Gomega) {
			var got sigwatchv1alpha1.ImageSignaturePolicy
			g.Expect(c.Get(ctx, client.ObjectKeyFromObject(p), &got)).To(Succeed())
			got.Spec.Authorities[0].TransparencyLog = &sigwatchv1alpha1.TransparencyLogPolicy{Mode: sigwatchv1alpha1.TransparencyLogRequired, Online: online}
			g.Expect(c.Update(ctx, &got)).To(Succeed())
		}).Should(Succeed())
	}
	start := func() func() {
		return startManagerWith(t, func(cfg *controllers.Config) {
			cfg.LogURLs = map[string]string{stack.RekorOrigin: proxy.srv.URL}
			cfg.LogInterval = 200 * time.Millisecond
			cfg.IntervalOverride = time.Second
		})
	}
	stop := start()

	ns := "live-tlog"
	g.Expect(c.Create(ctx, envtest.Namespace(ns, nil))).To(Succeed())
	_, err = envtest.RunDeployment(ctx, c, ns, "web", img.String(), "docker-pullable://"+img.String())
	g.Expect(err).NotTo(HaveOccurred())
	image := func(g Gomega) *sigwatchv1alpha1.SignedImage {
		var list sigwatchv1alpha1.SignedImageList
		g.Expect(c.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		g.Expect(list.Items).To(HaveLen(1))
		return &list.Items[0]
	}
	condition := func(g Gomega, conditions []metav1.Condition, typ string) *metav1.Condition {
		cond := meta.FindStatusCondition(conditions, typ)
		g.Expect(cond).NotTo(BeNil(), typ)
		return cond
	}
	theLog := func(g Gomega) *sigwatchv1alpha1.TransparencyLog {
		var list sigwatchv1alpha1.TransparencyLogList
		g.Expect(c.List(ctx, &list)).To(Succeed())
		for i := range list.Items {
			if list.Items[i].Status.Origin == stack.RekorOrigin && list.Items[i].Status.URL == proxy.srv.URL {
				return &list.Items[i]
			}
		}
		g.Expect(list.Items).To(ContainElement(HaveField("Status.URL", proxy.srv.URL)))
		return nil
	}
	expect := func(verified metav1.ConditionStatus, verifiedReason string, inLog metav1.ConditionStatus, inLogReason string) {
		t.Helper()
		g.Eventually(func(g Gomega) {
			si := image(g)
			v := condition(g, si.Status.Conditions, sigwatchv1alpha1.VerifiedCondition)
			g.Expect(v.Status).To(Equal(verified), v.Message)
			g.Expect(v.Reason).To(Equal(verifiedReason), v.Message)
			l := condition(g, si.Status.Conditions, sigwatchv1alpha1.InTransparencyLogCondition)
			g.Expect(l.Status).To(Equal(inLog), l.Message)
			g.Expect(l.Reason).To(Equal(inLogReason), l.Message)
		}).WithTimeout(60 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())
	}

	// The entry is proven in the current tree, and the log's view is kept.
	expect(metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason, metav1.ConditionTrue, sigwatchv1alpha1.EntryInLogReason)
	si := image(g)
	g.Expect(si.Status.Signatures).NotTo(BeEmpty())
	first := si.Status.Signatures[0]
	g.Expect(first.Inclusion).NotTo(BeNil())
	g.Expect(first.Inclusion.Result).To(Equal(sigwatchv1alpha1.LogInclusionInLog))
	g.Expect(first.Inclusion.TreeSize).To(BeNumerically(">", *first.TransparencyLogIndex))
	g.Expect(first.TransparencyLog).To(Equal(theLog(g).Name))
	g.Expect(condition(g, si.Status.Conditions, sigwatchv1alpha1.InTransparencyLogCondition).Message).To(ContainSubstring("proven in log 127.0.0.1 at tree size"))
	var older []byte
	var olderSize int64
	g.Eventually(func(g Gomega) {
		tl := theLog(g)
		g.Expect(condition(g, tl.Status.Conditions, sigwatchv1alpha1.ConsistentCondition).Status).To(Equal(metav1.ConditionTrue))
		g.Expect(condition(g, tl.Status.Conditions, sigwatchv1alpha1.ReadyCondition).Status).To(Equal(metav1.ConditionTrue))
		g.Expect(tl.Status.Checkpoint).To(HavePrefix(stack.RekorOrigin + "\n"))
		older, olderSize = []byte(tl.Status.Checkpoint), *tl.Status.TreeSize
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// The log grows: the next verifications prove the entry in the larger tree, consistent with the last.
	grow("a")
	g.Eventually(func(g Gomega) {
		tl := theLog(g)
		g.Expect(*tl.Status.TreeSize).To(BeNumerically(">", olderSize))
		g.Expect(condition(g, tl.Status.Conditions, sigwatchv1alpha1.ConsistentCondition).Status).To(Equal(metav1.ConditionTrue))
		in := image(g).Status.Signatures[0].Inclusion
		g.Expect(in.TreeSize).To(BeNumerically(">", olderSize))
	}).WithTimeout(60 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())

	// A restart, while the log grows: the new manager proves the grown log consistent with the checkpoint
	// the first one persisted.
	stop()
	persisted := *theLog(g).Status.TreeSize
	restarted := time.Now()
	grow("b")
	stop = start()
	g.Eventually(func(g Gomega) {
		tl := theLog(g)
		g.Expect(*tl.Status.TreeSize).To(BeNumerically(">", persisted))
		g.Expect(tl.Status.LastVerifiedTime.Time).To(BeTemporally(">", restarted.Add(-time.Second)))
		g.Expect(condition(g, tl.Status.Conditions, sigwatchv1alpha1.ConsistentCondition).Status).To(Equal(metav1.ConditionTrue))
	}).WithTimeout(60 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())
	expect(metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason, metav1.ConditionTrue, sigwatchv1alpha1.EntryInLogReason)

	// Another restart, and the log's first checkpoint served again: only the persisted checkpoint can tell
	// it is a rollback. Monitor reports it and keeps the verdict.
	stop()
	proxy.set(false, older)
	stop = start()
	expect(metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason, metav1.ConditionFalse, sigwatchv1alpha1.LogInconsistentReason)
	tl := theLog(g)
	g.Expect(tl.Status.Inconsistency).NotTo(BeNil())
	g.Expect(tl.Status.Inconsistency.Kind).To(Equal(sigwatchv1alpha1.LogRollback))
	g.Expect(tl.Status.Inconsistency.ConflictingCheckpoint).To(Equal(string(older)))
	g.Expect(tl.Status.Inconsistency.TrustedCheckpoint).To(Equal(tl.Status.Checkpoint))
	g.Expect(condition(g, tl.Status.Conditions, sigwatchv1alpha1.ConsistentCondition).Status).To(Equal(metav1.ConditionFalse))
	g.Eventually(func(g Gomega) {
		var evs eventsv1.EventList
		g.Expect(c.List(ctx, &evs)).To(Succeed())
		g.Expect(evs.Items).To(ContainElement(And(HaveField("Reason", controllers.EventReasonLogInconsistent),
			HaveField("Regarding.Name", tl.Name), HaveField("Type", "Warning"))))
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// Require: an inconsistent log fails the image.
	setOnline(sigwatchv1alpha1.OnlineLogRequire)
	expect(metav1.ConditionFalse, sigwatchv1alpha1.LogInconsistentReason, metav1.ConditionFalse, sigwatchv1alpha1.LogInconsistentReason)

	// The operator has looked into it: deleting the TransparencyLog trusts the log (served as it is) again.
	proxy.set(false, nil)
	g.Expect(c.Delete(ctx, tl)).To(Succeed())
	expect(metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason, metav1.ConditionTrue, sigwatchv1alpha1.EntryInLogReason)
	g.Eventually(func(g Gomega) {
		g.Expect(theLog(g).Status.Inconsistency).To(BeNil())
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// An outage: Unknown under Require (the last good signatures are kept), never False under Monitor.
	proxy.set(true, nil)
	expect(metav1.ConditionUnknown, sigwatchv1alpha1.LogUnavailableReason, metav1.ConditionUnknown, sigwatchv1alpha1.LogUnavailableReason)
	g.Expect(image(g).Status.Signatures).NotTo(BeEmpty())
	g.Eventually(func(g Gomega) {
		r := condition(g, theLog(g).Status.Conditions, sigwatchv1alpha1.ReadyCondition)
		g.Expect(r.Reason).To(Equal(sigwatchv1alpha1.LogUnavailableReason))
		g.Expect(r.Message).To(ContainSubstring("HTTP 503"))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	setOnline(sigwatchv1alpha1.OnlineLogMonitor)
	expect(metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason, metav1.ConditionUnknown, sigwatchv1alpha1.LogUnavailableReason)

	// A forged checkpoint (the real one, its size changed) proves nothing: unavailable, not inconsistent.
	proxy.set(false, nil)
	expect(metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason, metav1.ConditionTrue, sigwatchv1alpha1.EntryInLogReason)
	resp, err := http.Get(s.stack.RekorTilesURL + "/checkpoint")
	g.Expect(err).NotTo(HaveOccurred())
	real, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	lines := bytes.SplitN(real, []byte("\n"), 3)
	forged := []byte(string(lines[0]) + "\n" + "999999" + "\n" + string(lines[2]))
	proxy.set(false, forged)
	g.Eventually(func(g Gomega) {
		l := condition(g, image(g).Status.Conditions, sigwatchv1alpha1.InTransparencyLogCondition)
		g.Expect(l.Reason).To(Equal(sigwatchv1alpha1.LogUnavailableReason))
		g.Expect(l.Message).To(ContainSubstring("does not verify with its key"))
	}).WithTimeout(60 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())
	g.Expect(strings.Contains(string(forged), "999999")).To(BeTrue())
	g.Expect(condition(g, theLog(g).Status.Conditions, sigwatchv1alpha1.ConsistentCondition).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(condition(g, image(g).Status.Conditions, sigwatchv1alpha1.VerifiedCondition).Status).To(Equal(metav1.ConditionTrue))
	stop()
}
