package controllers

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/sharding"
)

// TestCacheGaugesReportOnlyWhenElected: every replica has the cache, so only the elected one reports
// the SignedImages and policies; a standby's series would count each of them twice.
func TestCacheGaugesReportOnlyWhenElected(t *testing.T) {
	si := &sigwatchv1alpha1.SignedImage{ObjectMeta: metav1.ObjectMeta{Namespace: stepNS, Name: "app-1234567890"}}
	pol := &sigwatchv1alpha1.ImageSignaturePolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}}
	e := newStepEnv(t, interceptor.Funcs{}, si, pol)
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg, e.c, sharding.Whole)
	if err != nil {
		t.Fatal(err)
	}
	elected := make(chan struct{})
	m.ReportWhenElected(elected)
	for _, name := range []string{"sigwatch_signedimages", "sigwatch_imagesignaturepolicy_ready"} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n != 0 {
			t.Errorf("a standby reports %d series of %s (%v), want none", n, name, err)
		}
	}
	close(elected)
	for _, name := range []string{"sigwatch_signedimages", "sigwatch_imagesignaturepolicy_ready"} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n != 1 {
			t.Errorf("the leader reports %d series of %s (%v), want 1", n, name, err)
		}
	}
}
