//go:build integration

package controllers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/controllers"
	"github.com/sigwatch/sigwatch/internal/sharding"
)

func hasFamily(g Gomega, m *manager, name string) bool {
	families, err := m.metrics.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() == name {
			return true
		}
	}
	return false
}

// Two replicas split the namespaces: each SignedImage is verified by the replica of its namespace only,
// the policy's counts (written by shard 0) cover both shards, and a stopped replica's SignedImages keep
// the status they had, neither rewritten nor wrong, until it returns.
func TestTwoShards(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	shard := func(i int) func(*controllers.Config) {
		return func(c *controllers.Config) { c.Shard = sharding.Shard{Index: i, Total: 2} }
	}
	m0 := startManager(t, shard(0))
	m1 := startManager(t, shard(1))

	// Two namespaces of each shard, each running the three digests.
	byShard := map[int][]string{}
	for len(byShard[0]) < 2 || len(byShard[1]) < 2 {
		ns := namespace(t, nil)
		if s := sharding.Of(ns, 2); len(byShard[s]) < 2 {
			byShard[s] = append(byShard[s], ns)
		}
	}
	type want struct {
		si     *sigwatchv1alpha1.SignedImage
		status metav1.ConditionStatus
		reason string
		shard  int
	}
	var all []want
	for s, namespaces := range byShard {
		for _, ns := range namespaces {
			runPod(t, ns, "web-1", "web", f.signed.Context().Name()+":v1", imageID(f.signed))
			runPod(t, ns, "rogue-1", "rogue", f.wrongKey.Context().Name()+":v1", imageID(f.wrongKey))
			runPod(t, ns, "job-1", "", f.unsigned.String(), "")
			all = append(all,
				want{signedImageFor(t, ns, repoOf(f.signed), f.signed.DigestStr()), metav1.ConditionTrue, sigwatchv1alpha1.VerifiedReason, s},
				want{signedImageFor(t, ns, repoOf(f.wrongKey), f.wrongKey.DigestStr()), metav1.ConditionFalse, sigwatchv1alpha1.UntrustedSignerReason, s},
				want{signedImageFor(t, ns, repoOf(f.unsigned), f.unsigned.DigestStr()), metav1.ConditionFalse, sigwatchv1alpha1.SignatureMissingReason, s})
		}
	}
	for _, w := range all {
		verified(t, w.si, w.status, w.reason)
	}
	policyCounts := func(g Gomega) {
		p := &sigwatchv1alpha1.ImageSignaturePolicy{}
		g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(f.policy), p)).To(Succeed())
		g.Expect(p.Status.MatchedImages).To(BeEquivalentTo(12))
		g.Expect(p.Status.VerifiedImages).To(BeEquivalentTo(4))
		g.Expect(p.Status.FailedImages).To(BeEquivalentTo(8))
	}
	eventually(t, policyCounts)
	// Each SignedImage was made and verified by the replica of its shard alone (each writes as its own
	// field manager).
	for _, w := range all {
		cur := &sigwatchv1alpha1.SignedImage{}
		g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(w.si), cur)).To(Succeed())
		writers := map[string]bool{}
		for _, mf := range cur.ManagedFields {
			writers[mf.Manager+" "+mf.Subresource] = true
		}
		owner := controllers.FieldOwner(sharding.Shard{Index: w.shard, Total: 2})
		g.Expect(writers).To(Equal(map[string]bool{owner + " ": true, owner + " status": true}), "%s/%s of shard %d", w.si.Namespace, w.si.Name, w.shard)
	}
	// Only shard 0 reports the policies (the sum over replicas counts each once).
	g.Expect(hasFamily(g, m0, "sigwatch_imagesignaturepolicy_ready")).To(BeTrue())
	g.Expect(hasFamily(g, m1, "sigwatch_imagesignaturepolicy_ready")).To(BeFalse())

	// Shard 1 stops. Every SignedImage is asked to verify again: shard 0's are; shard 1's are left as
	// they were.
	m1.stop(t)
	before := map[string]sigwatchv1alpha1.SignedImageStatus{}
	for _, w := range all {
		cur := &sigwatchv1alpha1.SignedImage{}
		g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(w.si), cur)).To(Succeed())
		before[w.si.Namespace+"/"+w.si.Name] = cur.Status
		annotate(t, cur, sigwatchv1alpha1.ReverifyAnnotation, "after-stop")
	}
	// A new digest in a namespace of shard 1 gets no SignedImage while its replica is away.
	late := f.reg.PushRandomImage(t, "team/late")
	runPod(t, byShard[1][0], "late-1", "late", late.String(), "")
	handled := func(g Gomega, w want, token string) bool {
		cur := &sigwatchv1alpha1.SignedImage{}
		g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(w.si), cur)).To(Succeed())
		return cur.Status.LastHandledReverify == token
	}
	eventually(t, func(g Gomega) {
		for _, w := range all {
			if w.shard == 0 {
				g.Expect(handled(g, w, "after-stop")).To(BeTrue(), "%s/%s", w.si.Namespace, w.si.Name)
			}
		}
	})
	NewWithT(t).Consistently(func(g Gomega) {
		for _, w := range all {
			if w.shard != 1 {
				continue
			}
			cur := &sigwatchv1alpha1.SignedImage{}
			g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(w.si), cur)).To(Succeed())
			g.Expect(cur.Status).To(Equal(before[w.si.Namespace+"/"+w.si.Name]), "%s/%s: untouched while its shard is away", w.si.Namespace, w.si.Name)
		}
		var list sigwatchv1alpha1.SignedImageList
		g.Expect(env.Client.List(context.Background(), &list, client.InNamespace(byShard[1][0]))).To(Succeed())
		for _, si := range list.Items {
			g.Expect(si.Spec.Digest).NotTo(Equal(late.DigestStr()), "shard 0 does not take shard 1's pods")
		}
		policyCounts(g)
	}).WithTimeout(3 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())

	// Shard 1 returns and catches up: the requests it missed, and the new digest.
	startManager(t, shard(1))
	eventually(t, func(g Gomega) {
		for _, w := range all {
			g.Expect(handled(g, w, "after-stop")).To(BeTrue(), "%s/%s", w.si.Namespace, w.si.Name)
		}
	})
	verified(t, signedImageFor(t, byShard[1][0], repoOf(late), late.DigestStr()), metav1.ConditionFalse, sigwatchv1alpha1.SignatureMissingReason)
	eventually(t, func(g Gomega) {
		p := &sigwatchv1alpha1.ImageSignaturePolicy{}
		g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(f.policy), p)).To(Succeed())
		g.Expect(p.Status.MatchedImages).To(BeEquivalentTo(13), fmt.Sprintf("%+v", p.Status))
		g.Expect(p.Status.FailedImages).To(BeEquivalentTo(9))
	})
}
