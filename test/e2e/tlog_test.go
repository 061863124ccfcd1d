//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
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

// point sends the proxy's reads to another tile server.
func (p *logProxy) point(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = target
}

func (p *logProxy) set(down bool, checkpoint []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down, p.served = down, checkpoint
}

func (p *logProxy) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	down, served, target := p.down, p.served, p.target
	p.mu.Unlock()
	switch {
	case down:
		http.Error(w, "the log is down", http.StatusServiceUnavailable)
		return
	case served != nil && (r.URL.Path == "/checkpoint" || r.URL.Path == "/api/v1/log"):
		_, _ = w.Write(served)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, target+r.URL.RequestURI(), r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
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

	p := livePolicy(t, "live-tlog", "yourorg/tlog", s.stack.TrustedRootJSON())
	start := func() func() {
		return startManagerWith(t, func(cfg *controllers.Config) {
			cfg.LogURLs = map[string]string{stack.RekorOrigin: proxy.srv.URL}
			cfg.LogInterval = 200 * time.Millisecond
			cfg.LogRollbackGrace = time.Second
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
	setOnline(t, p, sigwatchv1alpha1.OnlineLogRequire)
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
	setOnline(t, p, sigwatchv1alpha1.OnlineLogMonitor)
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

// TestForkedLog: two real Rekor v2 servers over copies of one log, with the same key, are each given
// other entries: one log, two histories, every checkpoint validly signed. sigwatch reads the first: an
// image whose entry only the second holds is not in the log (EntryNotInLog) while one logged in the first
// is; shown the second, larger view, sigwatch finds the trusted tree is not a prefix of it (a split view)
// and keeps both checkpoints.
func TestForkedLog(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := s.env.Client
	g.Expect(c.DeleteAllOf(ctx, &sigwatchv1alpha1.TransparencyLog{})).To(Succeed())
	fork, err := s.stack.ForkRekor(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	sign := func(repo string, opts stack.SignOptions) string {
		t.Helper()
		img, err := s.push(ctx, repo)
		g.Expect(err).NotTo(HaveOccurred())
		_, err = s.stack.Sign(ctx, img.String(), releaseClaims, opts)
		g.Expect(err).NotTo(HaveOccurred())
		return img.String()
	}
	inMain := sign("yourorg/fork:main", stack.SignOptions{})
	inFork := sign("yourorg/fork:fork", stack.SignOptions{SigningConfig: fork.SigningConfig})
	sign("yourorg/fork:more1", stack.SignOptions{SigningConfig: fork.SigningConfig})
	sign("yourorg/fork:more2", stack.SignOptions{SigningConfig: fork.SigningConfig})

	livePolicy(t, "forked-log", "yourorg/fork", s.stack.TrustedRootJSON())
	proxy := newLogProxy(t, s.stack.RekorTilesURL)
	startManagerWith(t, func(cfg *controllers.Config) {
		cfg.LogURLs = map[string]string{stack.RekorOrigin: proxy.srv.URL}
		cfg.LogInterval = 200 * time.Millisecond
		cfg.IntervalOverride = time.Second
	})

	ns := "forked-log"
	g.Expect(c.Create(ctx, envtest.Namespace(ns, nil))).To(Succeed())
	for name, img := range map[string]string{"main": inMain, "fork": inFork} {
		_, err := envtest.RunDeployment(ctx, c, ns, name, img, "docker-pullable://"+img)
		g.Expect(err).NotTo(HaveOccurred())
	}
	inLog := func(g Gomega, img string) *metav1.Condition {
		var list sigwatchv1alpha1.SignedImageList
		g.Expect(c.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		for _, si := range list.Items {
			if si.Spec.Image+"@"+si.Spec.Digest == img {
				v := meta.FindStatusCondition(si.Status.Conditions, sigwatchv1alpha1.VerifiedCondition)
				g.Expect(v).NotTo(BeNil())
				g.Expect(v.Status).To(Equal(metav1.ConditionTrue), "Monitor never changes the verdict: %s", v.Message)
				l := meta.FindStatusCondition(si.Status.Conditions, sigwatchv1alpha1.InTransparencyLogCondition)
				g.Expect(l).NotTo(BeNil())
				return l
			}
		}
		g.Expect(list.Items).To(ContainElement(HaveField("Spec.Digest", img[strings.Index(img, "@")+1:])))
		return nil
	}
	g.Eventually(func(g Gomega) {
		g.Expect(inLog(g, inMain).Reason).To(Equal(sigwatchv1alpha1.EntryInLogReason))
		l := inLog(g, inFork)
		g.Expect(l.Reason).To(Equal(sigwatchv1alpha1.EntryNotInLogReason), l.Message)
		g.Expect(l.Status).To(Equal(metav1.ConditionFalse))
	}).WithTimeout(60 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())
	var trusted string
	var list sigwatchv1alpha1.TransparencyLogList
	g.Expect(c.List(ctx, &list)).To(Succeed())
	g.Expect(list.Items).To(HaveLen(1))
	trusted = list.Items[0].Status.Checkpoint

	// The other view of the same log, larger, validly signed.
	proxy.point(fork.TilesURL)
	g.Eventually(func(g Gomega) {
		var list sigwatchv1alpha1.TransparencyLogList
		g.Expect(c.List(ctx, &list)).To(Succeed())
		g.Expect(list.Items).To(HaveLen(1))
		inc := list.Items[0].Status.Inconsistency
		g.Expect(inc).NotTo(BeNil())
		g.Expect(inc.Kind).To(Equal(sigwatchv1alpha1.LogFork))
		g.Expect(inc.Message).To(ContainSubstring("is not a prefix of"))
		g.Expect(inc.TrustedCheckpoint).To(Equal(trusted))
		g.Expect(inc.ConflictingCheckpoint).To(HavePrefix(stack.RekorOrigin + "\n"))
		g.Expect(inc.ConflictingCheckpoint).NotTo(Equal(trusted))
		g.Expect(inLog(g, inMain).Reason).To(Equal(sigwatchv1alpha1.LogInconsistentReason))
	}).WithTimeout(60 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())
}

// TestLiveRekorV1: a real Rekor v1 (rekor-server over Trillian and MariaDB), cosign signing into it; each
// re-verification proves the entry through the API's retrieval and the shard's signed tree heads
// consistent as the log grows; an older tree head served again is a rollback, a forged one proves
// nothing.
func TestLiveRekorV1(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := s.env.Client
	v1, err := stack.StartRekorV1(ctx, "")
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(v1.Stop)
	signing, err := s.stack.WithRekorV1(ctx, v1)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.DeleteAllOf(ctx, &sigwatchv1alpha1.TransparencyLog{})).To(Succeed())
	sign := func(repo string) string {
		t.Helper()
		img, err := s.push(ctx, repo)
		g.Expect(err).NotTo(HaveOccurred())
		out, err := s.stack.Sign(ctx, img.String(), releaseClaims, stack.SignOptions{SigningConfig: signing.SigningConfig, TrustedRoot: signing.TrustedRootPath})
		g.Expect(err).NotTo(HaveOccurred(), string(out))
		return img.String()
	}
	img := sign("yourorg/v1:a")
	logInfo := func() []byte {
		resp, err := http.Get(fmt.Sprintf("%s/api/v1/log?treeID=%d", v1.URL, v1.TreeID))
		g.Expect(err).NotTo(HaveOccurred())
		defer func() { _ = resp.Body.Close() }()
		body, err := io.ReadAll(resp.Body)
		g.Expect(err).NotTo(HaveOccurred())
		return body
	}
	older := logInfo()

	p := livePolicy(t, "rekor-v1", "yourorg/v1", signing.TrustedRoot)
	proxy := newLogProxy(t, v1.URL)
	startManagerWith(t, func(cfg *controllers.Config) {
		cfg.LogURLs = map[string]string{stack.RekorOrigin: proxy.srv.URL}
		cfg.LogInterval = 200 * time.Millisecond
		cfg.LogRollbackGrace = time.Second
		cfg.IntervalOverride = time.Second
	})
	ns := "rekor-v1"
	g.Expect(c.Create(ctx, envtest.Namespace(ns, nil))).To(Succeed())
	_, err = envtest.RunDeployment(ctx, c, ns, "web", img, "docker-pullable://"+img)
	g.Expect(err).NotTo(HaveOccurred())
	conditions := func(g Gomega) (verified, inLog *metav1.Condition) {
		var list sigwatchv1alpha1.SignedImageList
		g.Expect(c.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		g.Expect(list.Items).To(HaveLen(1))
		verified = meta.FindStatusCondition(list.Items[0].Status.Conditions, sigwatchv1alpha1.VerifiedCondition)
		inLog = meta.FindStatusCondition(list.Items[0].Status.Conditions, sigwatchv1alpha1.InTransparencyLogCondition)
		g.Expect(verified).NotTo(BeNil())
		g.Expect(inLog).NotTo(BeNil())
		return verified, inLog
	}
	expect := func(verified, inLog string) {
		t.Helper()
		g.Eventually(func(g Gomega) {
			v, l := conditions(g)
			g.Expect(v.Reason).To(Equal(verified), v.Message)
			g.Expect(l.Reason).To(Equal(inLog), l.Message)
		}).WithTimeout(60 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())
	}
	theLog := func(g Gomega) *sigwatchv1alpha1.TransparencyLog {
		var list sigwatchv1alpha1.TransparencyLogList
		g.Expect(c.List(ctx, &list)).To(Succeed())
		g.Expect(list.Items).To(ContainElement(HaveField("Status.Origin", v1.Origin)))
		for i := range list.Items {
			if list.Items[i].Status.Origin == v1.Origin {
				return &list.Items[i]
			}
		}
		return nil
	}

	expect(sigwatchv1alpha1.VerifiedReason, sigwatchv1alpha1.EntryInLogReason)
	_, l := conditions(g)
	g.Expect(l.Message).To(ContainSubstring("proven in log " + v1.Origin))
	var size int64
	g.Eventually(func(g Gomega) {
		tl := theLog(g)
		g.Expect(tl.Status.TreeSize).NotTo(BeNil())
		size = *tl.Status.TreeSize
		g.Expect(meta.IsStatusConditionTrue(tl.Status.Conditions, sigwatchv1alpha1.ConsistentCondition)).To(BeTrue())
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// The log grows: its new tree heads are proven consistent through the API.
	sign("yourorg/v1-more:b")
	g.Eventually(func(g Gomega) {
		tl := theLog(g)
		g.Expect(*tl.Status.TreeSize).To(BeNumerically(">", size))
		g.Expect(meta.IsStatusConditionTrue(tl.Status.Conditions, sigwatchv1alpha1.ConsistentCondition)).To(BeTrue())
	}).WithTimeout(60 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())
	expect(sigwatchv1alpha1.VerifiedReason, sigwatchv1alpha1.EntryInLogReason)

	// An older signed tree head served again, for longer than the grace: a rollback.
	proxy.set(false, older)
	expect(sigwatchv1alpha1.VerifiedReason, sigwatchv1alpha1.LogInconsistentReason)
	tl := theLog(g)
	g.Expect(tl.Status.Inconsistency).NotTo(BeNil())
	g.Expect(tl.Status.Inconsistency.Kind).To(Equal(sigwatchv1alpha1.LogRollback))
	setOnline(t, p, sigwatchv1alpha1.OnlineLogRequire)
	expect(sigwatchv1alpha1.LogInconsistentReason, sigwatchv1alpha1.LogInconsistentReason)

	// Trusted again once the TransparencyLog is deleted; then a forged tree head proves nothing.
	proxy.set(false, nil)
	g.Expect(c.Delete(ctx, tl)).To(Succeed())
	expect(sigwatchv1alpha1.VerifiedReason, sigwatchv1alpha1.EntryInLogReason)
	forged := strings.Replace(string(logInfo()), `\n`+fmt.Sprint(*theLog(g).Status.TreeSize)+`\n`, `\n999999\n`, 1)
	g.Expect(forged).To(ContainSubstring("999999"))
	proxy.set(false, []byte(forged))
	expect(sigwatchv1alpha1.LogUnavailableReason, sigwatchv1alpha1.LogUnavailableReason)
	_, l = conditions(g)
	g.Expect(l.Message).To(ContainSubstring("does not verify with its key"))

	// Someone else signs the image: the policy rejects their signature (another workflow), and the
	// search of the log's index by the image's digest finds their entry. The verdict stands.
	proxy.set(false, nil)
	setOnline(t, p, sigwatchv1alpha1.OnlineLogMonitor)
	out, err := s.stack.Sign(ctx, img, prClaims, stack.SignOptions{SigningConfig: signing.SigningConfig, TrustedRoot: signing.TrustedRootPath})
	g.Expect(err).NotTo(HaveOccurred(), string(out))
	expect(sigwatchv1alpha1.VerifiedReason, sigwatchv1alpha1.UnexpectedSignerReason)
	_, l = conditions(g)
	g.Expect(l.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(l.Message).To(ContainSubstring(prClaims.CertificateIdentity()))
	g.Expect(l.Message).To(ContainSubstring("of log " + v1.Origin))
	g.Expect(l.Message).NotTo(ContainSubstring(releaseClaims.CertificateIdentity()), "the trusted signer is expected")
}

// setOnline sets the online check of the policy's first authority.
func setOnline(t *testing.T, p *sigwatchv1alpha1.ImageSignaturePolicy, online sigwatchv1alpha1.OnlineLogCheck) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		var got sigwatchv1alpha1.ImageSignaturePolicy
		g.Expect(s.env.Client.Get(context.Background(), client.ObjectKeyFromObject(p), &got)).To(Succeed())
		got.Spec.Authorities[0].TransparencyLog = &sigwatchv1alpha1.TransparencyLogPolicy{Mode: sigwatchv1alpha1.TransparencyLogRequired, Online: online}
		g.Expect(s.env.Client.Update(context.Background(), &got)).To(Succeed())
	}).Should(Succeed())
}

// livePolicy creates, for the test, a policy over the registry's repo that requires the release workflow,
// with trustedRoot (a trusted_root.json) in a ConfigMap of a namespace of its own.
func livePolicy(t *testing.T, name, repo string, trustedRoot []byte) *sigwatchv1alpha1.ImageSignaturePolicy {
	t.Helper()
	g := NewWithT(t)
	ctx, c := context.Background(), s.env.Client
	g.Expect(c.Create(ctx, envtest.Namespace(name+"-trust", nil))).To(Succeed())
	g.Expect(c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: name + "-trust", Name: "sigstore"},
		Data: map[string]string{"trusted_root.json": string(trustedRoot)}})).To(Succeed())
	spec := releasePolicySpec(releaseIdentity())
	spec.Images = []sigwatchv1alpha1.ImagePattern{sigwatchv1alpha1.ImagePattern(s.reg.Host + "/" + repo)}
	spec.TrustedRoot = &sigwatchv1alpha1.TrustedRootSource{ConfigMapRef: sigwatchv1alpha1.ConfigMapKeyReference{Namespace: name + "-trust", Name: "sigstore"}}
	p := &sigwatchv1alpha1.ImageSignaturePolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
	g.Expect(c.Create(ctx, p)).To(Succeed())
	t.Cleanup(func() { _ = c.Delete(ctx, p) })
	return p
}
