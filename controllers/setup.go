package controllers

import (
	"context"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/sigwatch/sigwatch/internal/logmonitor"
	"github.com/sigwatch/sigwatch/internal/registry"
	"github.com/sigwatch/sigwatch/internal/sharding"
	"github.com/sigwatch/sigwatch/internal/trust"
	"github.com/sigwatch/sigwatch/internal/verification"
)

// Config wires the controllers.
type Config struct {
	// PublicGood returns the public-good trust root.
	PublicGood func(ctx context.Context) (*trust.Root, error)
	// PublicGoodStatus, if set, describes it for the metrics (fallback, age).
	PublicGoodStatus func() trust.PublicGoodStatus
	// TUFCacheDir, TUFRefresh and TUFMaxAge configure the policies' own TUF repositories
	// (spec.trustedRoot.tuf): see PolicyStore.
	TUFCacheDir string
	TUFRefresh  time.Duration
	TUFMaxAge   time.Duration
	// Registry configures registry access (Observer is set to the metrics).
	Registry registry.Options
	// Keychain is used after the pods' pull secrets (nil: none).
	Keychain authn.Keychain
	// Metrics registry (controller-runtime's metrics.Registry in the manager).
	MetricsRegisterer prometheus.Registerer

	MaxConcurrent int
	// MaxPerRegistry bounds the verifications in flight that read one registry host, so that slow
	// registries leave workers for the others (0: three quarters of MaxConcurrent, at least 1; see
	// PerRegistryLimit).
	MaxPerRegistry       int
	GCGrace              time.Duration
	NoMatch              NoMatchPolicy
	VerificationDeadline time.Duration
	// StateTTL shares registry state between SignedImages of one digest (default 30s).
	StateTTL time.Duration
	// IntervalOverride replaces every policy's reverifyInterval (tests and the demo).
	IntervalOverride time.Duration
	// MaxSignatureBytes and MemoryBudget bound what verifications read (0: the engine's defaults).
	MaxSignatureBytes, MemoryBudget int64
	// MinRetry is the first delay after a transient failure (default 10s).
	MinRetry time.Duration
	// Clock is the one clock of the controllers, the verification engine and the registry client's
	// retries (default: the real clock).
	Clock clock.Clock
	// Shard is this replica's part of the cluster's namespaces (zero: all of them). The manager's cache
	// must be built with CacheOptions(Shard).
	Shard sharding.Shard
	// PodWorkers is the number of pods handled at once (0: the pod controller's default).
	PodWorkers int
	// SecretAccess says which Secrets the manager reads (zero: every namespace's). The manager's cache
	// must be built with CacheOptionsFor(Shard, SecretAccess).
	SecretAccess SecretAccess
	// RegistryConfig, if set, is a mounted docker config file of registry credentials, used after the
	// pods' pull secrets and before Keychain.
	RegistryConfig *registry.ConfigFile
	// ImageMetrics adds sigwatch_signedimage_info, one series per SignedImage in use (--image-metrics).
	ImageMetrics bool
	// PolicyReports registers the controller that writes wgpolicyk8s.io/v1alpha2 PolicyReports (the API
	// server must serve them: see policyreport.Served); PolicyReportDelay batches a namespace's changes
	// into one write (0: 5s).
	PolicyReports     bool
	PolicyReportDelay time.Duration
	// LogURLs replaces, by checkpoint origin, where a Rekor v2 log's checkpoint and tiles are read (by
	// default its baseUrl in the trust root).
	LogURLs map[string]string
	// LogInterval is how long a log's verified checkpoint is used before it is read again (0: 1m);
	// LogRollbackGrace how long a log may serve older checkpoints before it is a rollback (0: 10m).
	LogInterval, LogRollbackGrace time.Duration
	// LogsOff turns the live transparency log checks off whatever the policies say (--transparency-log-
	// checks=false).
	LogsOff bool
}

// PerRegistryLimit is the bound on the verifications in flight per registry host with maxConcurrent
// workers: configured when positive, else three quarters of the workers (at least 1), so that at least
// a quarter of them are always left for the other registries however slow one is.
func PerRegistryLimit(maxConcurrent, configured int) int {
	if configured > 0 {
		return configured
	}
	return max(1, max(1, maxConcurrent)*3/4)
}

// Setup registers the field indexes, the metrics and the three controllers with mgr, and returns the
// verification engine's registry client (tests count its requests).
func Setup(ctx context.Context, mgr ctrl.Manager, c Config) (*registry.Client, error) {
	owns := c.Shard.Owns
	if !c.Shard.Sharded() {
		owns = nil
	}
	var mopts []MetricsOption
	if c.ImageMetrics {
		mopts = append(mopts, WithImageInfo())
	}
	m, err := NewMetrics(c.MetricsRegisterer, mgr.GetCache(), c.Shard, mopts...)
	if err != nil {
		return nil, fmt.Errorf("registering metrics: %w", err)
	}
	m.ReportWhenElected(mgr.Elected())
	// Every read of a Secret goes through the gate: one the mode leaves out is refused before the cache
	// (which would wait for ever on a watch RBAC forbids) or the API server is asked.
	store := &PolicyStore{Reader: secretGate{mgr.GetCache(), c.SecretAccess}, APIReader: secretGate{mgr.GetAPIReader(), c.SecretAccess},
		PublicGood: c.PublicGood, TUFCacheDir: c.TUFCacheDir, TUFRefresh: c.TUFRefresh, TUFMaxAge: c.TUFMaxAge}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	ropts := c.Registry
	ropts.Observer = m.ObserveRequest
	ropts.Clock = c.Clock
	reg := registry.New(ropts)
	if c.StateTTL == 0 {
		c.StateTTL = 30 * time.Second
	}
	var logs verification.LogChecker
	if !c.LogsOff {
		logs = logmonitor.New(logmonitor.Options{Interval: c.LogInterval, StaleGrace: c.LogRollbackGrace, Clock: c.Clock.Now, Observe: m.ObserveLogRequest,
			Store: &TransparencyLogStore{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("sigwatch"), Metrics: m}})
	}
	engine := verification.New(verification.Options{Registry: reg, Roots: store.Root, Timeout: c.VerificationDeadline,
		StateTTL: c.StateTTL, Clock: c.Clock.Now, MaxBytes: c.MaxSignatureBytes, MemoryBudget: c.MemoryBudget,
		MaxPerHost: PerRegistryLimit(c.MaxConcurrent, c.MaxPerRegistry), Logs: logs, LogURLs: c.LogURLs})
	if err := SetupIndexes(ctx, mgr); err != nil {
		return nil, fmt.Errorf("registering field indexes: %w", err)
	}
	if err := (&PodReconciler{Client: mgr.GetClient(), Owns: owns, Workers: c.PodWorkers}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up the pod controller: %w", err)
	}
	if err := (&SignedImageReconciler{
		Client: mgr.GetClient(), Verifier: engine, Policies: store, Metrics: m, Clock: c.Clock,
		Recorder: mgr.GetEventRecorder("sigwatch"),
		Credentials: &PullSecrets{Reader: secretGate{mgr.GetClient(), c.SecretAccess}, Fallback: c.Keychain,
			Access: c.SecretAccess, File: c.RegistryConfig},
		GCGrace: c.GCGrace, NoMatch: c.NoMatch, MaxConcurrent: c.MaxConcurrent,
		IntervalOverride: c.IntervalOverride, MinRetry: c.MinRetry, Owns: owns, SecretAccess: c.SecretAccess,
	}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up the SignedImage controller: %w", err)
	}
	if c.PublicGoodStatus != nil {
		if err := registerTrustMetrics(c.MetricsRegisterer, c.PublicGoodStatus); err != nil {
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	if err := (&ImageSignaturePolicyReconciler{Client: mgr.GetClient(), Policies: store, Metrics: m,
		ReadOnly: !c.Shard.Counts(), SecretAccess: c.SecretAccess}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up the ImageSignaturePolicy controller: %w", err)
	}
	if c.Shard.Counts() {
		// Cluster-scoped, like the policies: the counting shard writes their status.
		if err := (&ImageSignatureExemptionReconciler{Client: mgr.GetClient(), Metrics: m, Clock: c.Clock}).SetupWithManager(mgr); err != nil {
			return nil, fmt.Errorf("setting up the ImageSignatureExemption controller: %w", err)
		}
		if err := (&SignatureRevocationReconciler{Client: mgr.GetClient(), Metrics: m, Clock: c.Clock}).SetupWithManager(mgr); err != nil {
			return nil, fmt.Errorf("setting up the SignatureRevocation controller: %w", err)
		}
	}
	if c.PolicyReports {
		if err := (&PolicyReportReconciler{Client: mgr.GetClient(), Reader: mgr.GetCache(), APIReader: mgr.GetAPIReader(),
			Owns: owns, Delay: c.PolicyReportDelay}).SetupWithManager(mgr); err != nil {
			return nil, fmt.Errorf("setting up the PolicyReport controller: %w", err)
		}
	}
	return reg, nil
}
