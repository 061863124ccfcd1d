package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/sigwatch/sigwatch/controllers"
	"github.com/sigwatch/sigwatch/internal/cloudauth"
	"github.com/sigwatch/sigwatch/internal/policyreport"
	"github.com/sigwatch/sigwatch/internal/registry"
	"github.com/sigwatch/sigwatch/internal/scheme"
	"github.com/sigwatch/sigwatch/internal/sharding"
	"github.com/sigwatch/sigwatch/internal/signatures"
	"github.com/sigwatch/sigwatch/internal/trust"
	"github.com/sigwatch/sigwatch/internal/verification"
)

// ManagerOptions are the manager's settings (its flags).
type ManagerOptions struct {
	MetricsAddr        string
	SecureMetrics      bool
	ProbeAddr          string
	LeaderElection     bool
	LeaderElectionNS   string
	MaxConcurrent      int
	MaxPerRegistry     int
	GCGrace            time.Duration
	NoMatchPolicy      string
	InsecureRegistries []string
	OfflineTrustRoot   bool
	TUFCacheDir        string
	// TUFMirror and TUFRoot name a private Sigstore's TUF repository (its URL and a file with its initial
	// root.json), which then gives the default trust root instead of the public-good one.
	TUFMirror, TUFRoot   string
	KubeConfig           string
	RegistryTimeout      time.Duration
	VerificationDeadline time.Duration
	// IntervalOverride replaces every policy's reverifyInterval (tests and the demo; not a flag).
	IntervalOverride time.Duration
	// StateTTL is how long registry state is shared between SignedImages of one digest.
	StateTTL time.Duration
	// MaxSignatureBytes caps what one verification reads of signatures and attestations; MemoryBudget
	// what all verifications hold at once.
	MaxSignatureBytes, MemoryBudget int64
	// MaxTrustRootAge bounds how old a public-good trust root standing in for a current one may be (0:
	// no bound).
	MaxTrustRootAge time.Duration
	// PprofAddr serves net/http/pprof ("" or "0": off).
	PprofAddr string
	// TotalShards and Shard split the namespaces between replicas; Shard < 0 takes it from the
	// StatefulSet ordinal of PodName.
	TotalShards, Shard int
	PodName            string
	// PodWorkers is the number of pods handled at once.
	PodWorkers int
	// PolicyReports is --policy-reports: auto (when the API server serves them), true or false.
	PolicyReports policyreport.Mode
	// ImageMetrics adds sigwatch_signedimage_info, one series per SignedImage in use.
	ImageMetrics bool
	// CloudCredentials are the clouds whose identity (of the manager's pod) reads their registries;
	// CloudRegistries more hosts for them (PROVIDER=HOSTPATTERN).
	CloudCredentials string
	CloudRegistries  []string
	// SecretAccess says which Secrets the manager reads (--secret-access, --secret-namespaces);
	// RegistryConfig is a docker config file of registry credentials (--registry-config).
	SecretAccess   controllers.SecretAccess
	RegistryConfig string
	// LogChecks, LogURLs and LogInterval configure the live transparency log checks
	// (--transparency-log-checks, --transparency-log-url ORIGIN=URL, --transparency-log-interval).
	LogChecks                     bool
	LogURLs                       map[string]string
	LogInterval, LogRollbackGrace time.Duration
}

func (o *ManagerOptions) bind(fs *flag.FlagSet) {
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8443", "address of the metrics endpoint (\"0\" disables it)")
	fs.BoolVar(&o.SecureMetrics, "metrics-secure", true, "serve metrics over HTTPS with authentication and authorization (false: plain HTTP)")
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz probes")
	fs.BoolVar(&o.LeaderElection, "leader-elect", true, "elect a leader, so that one replica is active")
	fs.StringVar(&o.LeaderElectionNS, "leader-election-namespace", "", "namespace of the leader election lease (default: the pod's namespace)")
	fs.IntVar(&o.MaxConcurrent, "max-concurrent-verifications", 16, "SignedImages handled (and verifications in flight) at once")
	fs.IntVar(&o.MaxPerRegistry, "max-verifications-per-registry", 0, "verifications in flight at once of images on one registry host; one more waits up to 1s for a slot while the host answers promptly, else it is deferred for a few seconds, so that slow registries leave workers for the others (0: three quarters of --max-concurrent-verifications, at least 1)")
	fs.DurationVar(&o.GCGrace, "gc-grace", 10*time.Minute, "how long a SignedImage that no pod runs is kept before it is deleted")
	fs.StringVar(&o.NoMatchPolicy, "no-match-policy", "ignore", "what an image that no policy covers gets: ignore (Ready) or warn (not Ready, Warning Event)")
	fs.Func("insecure-registry", insecureRegistryUsage, func(v string) error {
		o.InsecureRegistries = append(o.InsecureRegistries, v)
		return nil
	})
	fs.BoolVar(&o.OfflineTrustRoot, "offline-trust-root", false, "use the embedded public-good trust root, without TUF")
	fs.StringVar(&o.KubeConfig, "kubeconfig", "", "kubeconfig file (default: in-cluster, or $KUBECONFIG, or ~/.kube/config)")
	fs.StringVar(&o.TUFCacheDir, "tuf-cache-dir", "", "TUF cache directory (default $HOME/.sigstore/root); the policies' own TUF repositories are kept under it too")
	fs.StringVar(&o.TUFMirror, "tuf-mirror", "", "`URL` of a private Sigstore's TUF repository whose trusted_root.json is the default trust root, instead of the public-good one (with --tuf-root; --offline-trust-root then has no effect)")
	fs.StringVar(&o.TUFRoot, "tuf-root", "", "`FILE` with the initial root.json of --tuf-mirror")
	fs.DurationVar(&o.RegistryTimeout, "registry-timeout", 20*time.Second, "timeout of one registry request")
	fs.DurationVar(&o.VerificationDeadline, "verification-timeout", time.Minute, "deadline of one image verification")
	fs.DurationVar(&o.MaxTrustRootAge, "max-trust-root-age", 0, "oldest public-good trust root used when TUF cannot deliver a current one: the last root TUF delivered counts from then, the embedded snapshot from its date; older fails verification as TrustedRootUnavailable (0: no bound; not applied with --offline-trust-root)")
	fs.StringVar(&o.PprofAddr, "pprof-bind-address", "", "address to serve net/http/pprof on, for profiling (\"\" or \"0\": off; it has no authentication: bind it to localhost and use kubectl port-forward)")
	fs.IntVar(&o.TotalShards, "total-shards", 1, "number of replicas that split the cluster's namespaces between them, each with its own leader election (see docs/performance.md)")
	fs.IntVar(&o.Shard, "shard", -1, "this replica's shard, from 0 to --total-shards - 1; -1 (the default) takes it, when --total-shards is more than 1, from the StatefulSet ordinal at the end of the pod name ($POD_NAME, else the host name), and fails if there is none")
	fs.IntVar(&o.PodWorkers, "pod-workers", 8, "pods handled at once (each costs at most one API call: creating the SignedImage of a new digest)")
	o.PolicyReports = policyreport.ModeAuto
	fs.Func("policy-reports", "write the verdicts as wgpolicyk8s.io/v1alpha2 PolicyReports, one per namespace, for Policy Reporter and other tools (see docs/policyreports.md): auto (if the API server serves them when the manager starts; the default), true (and fail to start if it does not) or false", func(v string) error {
		m, err := policyreport.ParseMode(v)
		o.PolicyReports = m
		return err
	})
	fs.BoolVar(&o.ImageMetrics, "image-metrics", false, "serve sigwatch_signedimage_info, one series per SignedImage in use with its image, digest and verdict: as many series as image digests run (see docs/monitoring.md#labels-and-cardinality)")
	fs.StringVar(&o.CloudCredentials, "cloud-credentials", "gcp,aws,azure", "clouds whose identity of the manager's pod reads their own registries after the pods' pull secrets: gcp (GCR, Artifact Registry), aws (ECR), azure (ACR), comma-separated, or none; a cloud's token is only sent to that cloud's registry hosts (see docs/install.md#cloud-registries)")
	fs.Func("cloud-registry", "PROVIDER=HOSTPATTERN: also read hosts matching the pattern (with * wildcards) with that cloud's credentials, for a registry mirror or private endpoint under another name (repeatable)", func(v string) error {
		if _, err := cloudauth.ParseRule(v); err != nil {
			return err
		}
		o.CloudRegistries = append(o.CloudRegistries, v)
		return nil
	})
	o.SecretAccess.Mode = controllers.SecretAccessCluster
	fs.Func("secret-access", "which Secrets the manager reads, as its RBAC allows: cluster (pull secrets and key Secrets in every namespace; the default), namespaces (only in --secret-namespaces) or none (no Secret: registry credentials from --registry-config and cloud identity, inline policy keys); see docs/security.md#choosing-an-rbac-mode", func(v string) error {
		m, err := controllers.ParseSecretAccessMode(v)
		o.SecretAccess.Mode = m
		return err
	})
	fs.Func("secret-namespaces", "with --secret-access=namespaces: the namespaces whose Secrets are read, comma-separated (repeatable)", func(v string) error {
		for _, ns := range strings.Split(v, ",") {
			if ns = strings.TrimSpace(ns); ns != "" {
				o.SecretAccess.Namespaces = append(o.SecretAccess.Namespaces, ns)
			}
		}
		return nil
	})
	fs.StringVar(&o.RegistryConfig, "registry-config", "", "docker config JSON file ({\"auths\": ...}, a mounted kubernetes.io/dockerconfigjson Secret) of registry credentials, used after the pods' pull secrets and before cloud identity; re-read when it changes (default: none)")
	fs.BoolVar(&o.LogChecks, "transparency-log-checks", true, "check the live transparency log of each accepted signature as the policies' transparencyLog.online says (false: never, whatever they say; for clusters that cannot reach the logs)")
	fs.DurationVar(&o.LogInterval, "transparency-log-interval", time.Minute, "how long a log's verified checkpoint is used before the log is read again: every entry checked meanwhile is proven against it")
	fs.DurationVar(&o.LogRollbackGrace, "transparency-log-rollback-grace", 10*time.Minute, "how long a log may serve checkpoints older than the one verified (a mirror that lags) before it is a rollback")
	fs.Func("transparency-log-url", "HOST=URL: read the log whose baseUrl has this host from URL, a mirror: a Rekor v2 log's checkpoint and tiles, a Rekor v1 log's API (repeatable; default: its baseUrl)", func(v string) error {
		origin, u, ok := strings.Cut(v, "=")
		if !ok || origin == "" || (!strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://")) {
			return errors.New("want ORIGIN=URL, with an http(s) URL")
		}
		if o.LogURLs == nil {
			o.LogURLs = map[string]string{}
		}
		o.LogURLs[origin] = u
		return nil
	})
	o.MaxSignatureBytes, o.MemoryBudget = signatures.DefaultMaxBytes, verification.DefaultMemoryBudget
	fs.Func("max-signature-bytes", "most bytes of signatures and attestations read for one image, as a quantity (default 32Mi); more fails the image (InvalidSignature)", quantity(&o.MaxSignatureBytes))
	fs.Func("signature-memory-budget", "most bytes of signatures and attestations held by all verifications at once, as a quantity (default 32Mi); verifications wait for their share", quantity(&o.MemoryBudget))
}

// quantity parses a flag given as a Kubernetes quantity ("32Mi") into bytes.
func quantity(into *int64) func(string) error {
	return func(v string) error {
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return err
		}
		if q.Sign() <= 0 {
			return errors.New("must be positive")
		}
		*into = q.Value()
		return nil
	}
}

func (o *ManagerOptions) validate() error {
	if o.NoMatchPolicy != string(controllers.NoMatchIgnore) && o.NoMatchPolicy != string(controllers.NoMatchWarn) {
		return fmt.Errorf("--no-match-policy must be ignore or warn, not %q", o.NoMatchPolicy)
	}
	if o.MaxConcurrent < 1 {
		return errors.New("--max-concurrent-verifications must be at least 1")
	}
	if o.MaxPerRegistry < 0 {
		return errors.New("--max-verifications-per-registry must not be negative")
	}
	if o.GCGrace < 0 {
		return errors.New("--gc-grace must not be negative")
	}
	if o.LogInterval <= 0 || o.LogRollbackGrace <= 0 {
		return errors.New("--transparency-log-interval and --transparency-log-rollback-grace must be positive")
	}
	if o.MaxTrustRootAge < 0 {
		return errors.New("--max-trust-root-age must not be negative")
	}
	if (o.TUFMirror == "") != (o.TUFRoot == "") {
		return errors.New("--tuf-mirror and --tuf-root go together")
	}

	if o.PodWorkers < 1 {
		return errors.New("--pod-workers must be at least 1")
	}
	if _, err := o.shard(); err != nil {
		return fmt.Errorf("--shard/--total-shards: %w", err)
	}
	if _, err := o.cloudOptions(); err != nil {
		return err
	}
	if err := o.SecretAccess.Validate(); err != nil {
		return err
	}
	if o.RegistryConfig != "" && !filepath.IsAbs(o.RegistryConfig) {
		return fmt.Errorf("--registry-config must be an absolute path, not %q", o.RegistryConfig)
	}
	if o.MemoryBudget < o.MaxSignatureBytes {
		return fmt.Errorf("--signature-memory-budget (%d bytes) must be at least --max-signature-bytes (%d bytes)", o.MemoryBudget, o.MaxSignatureBytes)
	}
	return nil
}

// cloudOptions are the cloud keychain's options of the flags.
func (o *ManagerOptions) cloudOptions() (cloudauth.Options, error) {
	providers, err := cloudauth.ParseProviders(o.CloudCredentials)
	if err != nil {
		return cloudauth.Options{}, fmt.Errorf("--cloud-credentials: %w", err)
	}
	co := cloudauth.Options{Providers: providers, Insecure: o.InsecureRegistries}
	for _, v := range o.CloudRegistries {
		r, err := cloudauth.ParseRule(v)
		if err != nil {
			return cloudauth.Options{}, fmt.Errorf("--cloud-registry: %w", err)
		}
		co.Registries = append(co.Registries, r)
	}
	if _, err := cloudauth.New(co); err != nil {
		return cloudauth.Options{}, fmt.Errorf("--cloud-registry: %w (add it to --cloud-credentials)", err)
	}
	return co, nil
}

// shard is this replica's shard.
func (o *ManagerOptions) shard() (sharding.Shard, error) {
	return sharding.Resolve(o.Shard, o.TotalShards, o.PodName)
}

// leaderElectionID is the lease of the shard: each shard elects its own leader. An unsharded manager
// keeps the lease it always had.
func leaderElectionID(s sharding.Shard) string {
	if !s.Sharded() {
		return "sigwatch.sigwatch.dev"
	}
	return fmt.Sprintf("sigwatch-shard-%d-of-%d.sigwatch.dev", s.Index, s.Total)
}

const managerUsage = `Usage: sigwatch manager [flags]

Runs the controllers: in a cluster (in-cluster configuration), or against --kubeconfig or $KUBECONFIG.
`

func runManager(args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o ManagerOptions
	o.bind(fs)
	if o.PodName = os.Getenv("POD_NAME"); o.PodName == "" {
		o.PodName, _ = os.Hostname()
	}
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	setUsage(fs, managerUsage)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := o.validate(); err != nil {
		fmt.Fprintf(stderr, "sigwatch manager: %v\n", err)
		return 2
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts), zap.WriteTo(stderr)))
	cfg, err := restConfig(o.KubeConfig)
	if err != nil {
		fmt.Fprintf(stderr, "sigwatch manager: no Kubernetes configuration (in-cluster or KUBECONFIG): %v\n", err)
		return 2
	}
	if err := RunManager(ctrl.SetupSignalHandler(), cfg, o); err != nil {
		fmt.Fprintf(stderr, "sigwatch manager: %v\n", err)
		return 1
	}
	return 0
}

// RunManager runs the controllers until ctx ends.
func RunManager(ctx context.Context, cfg *rest.Config, o ManagerOptions) error {
	logger := ctrl.Log.WithName("setup")
	shard, err := o.shard()
	if err != nil {
		return fmt.Errorf("--shard/--total-shards: %w", err)
	}
	metricsOpts := metricsserver.Options{BindAddress: o.MetricsAddr, SecureServing: o.SecureMetrics}
	if o.SecureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme.New(),
		Metrics:                 metricsOpts,
		HealthProbeBindAddress:  o.ProbeAddr,
		LeaderElection:          o.LeaderElection,
		LeaderElectionID:        leaderElectionID(shard),
		PprofBindAddress:        o.PprofAddr,
		LeaderElectionNamespace: o.LeaderElectionNS,
		// Secrets and ConfigMaps are never cached whole: only their metadata is watched, and their content
		// read when it changed.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}, &corev1.ConfigMap{}}},
			FieldOwner: controllers.FieldOwner(shard)},
		// Every pod of the cluster is cached: drop what sigwatch never reads, and nearly all of other
		// shards' objects.
		Cache: controllers.CacheOptionsFor(shard, o.SecretAccess),
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	publicGood := &trust.PublicGoodCache{
		Options: trust.PublicGoodOptions{Offline: o.OfflineTrustRoot, CacheDir: o.TUFCacheDir},
		MaxAge:  o.MaxTrustRootAge,
		Warn: func(err error) {
			logger.Error(err, "default trust root: TUF failed, an older root stands in (sigwatch_trust_root_fallback is 1)")
		},
	}
	if o.TUFMirror != "" {
		initial, err := os.ReadFile(o.TUFRoot)
		if err != nil {
			return fmt.Errorf("--tuf-root: %w", err)
		}
		opts := trust.TUFOptions{Mirror: o.TUFMirror, Root: initial, CacheDir: o.TUFCacheDir}
		publicGood.Options.Offline = false // there is no snapshot to be offline with: fallbacks are said, and bounded
		publicGood.Name = trust.SourceOfTUF(o.TUFMirror)
		publicGood.Loader = func(ctx context.Context) (*trust.Root, error) { return trust.FromTUF(ctx, opts) }
	}
	policyTUFCache := ""
	if o.TUFCacheDir != "" {
		policyTUFCache = filepath.Join(o.TUFCacheDir, "policies")
	}
	cloudOpts, err := o.cloudOptions()
	if err != nil {
		return err
	}
	cloudOpts.Warn = func(p cloudauth.Provider, host string, err error) {
		logger.Info("cloud registry credentials: no identity of this cloud found; its registry is read anonymously", "provider", p, "host", host, "reason", err.Error())
	}
	cloud, err := cloudauth.New(cloudOpts)
	if err != nil {
		return fmt.Errorf("--cloud-registry: %w", err)
	}
	reports, err := policyReportsEnabled(cfg, o.PolicyReports)
	if err != nil {
		return err
	}
	if _, err := controllers.Setup(ctx, mgr, controllers.Config{
		Keychain:         cloud,
		PublicGood:       publicGood.Get,
		PublicGoodStatus: publicGood.Status,
		TUFCacheDir:      policyTUFCache,
		TUFMaxAge:        o.MaxTrustRootAge,
		Registry: registry.Options{
			Insecure:       o.InsecureRegistries,
			RequestTimeout: o.RegistryTimeout,
			UserAgent:      "sigwatch/" + versionString(),
		},
		MetricsRegisterer:    metrics.Registry,
		MaxConcurrent:        o.MaxConcurrent,
		MaxPerRegistry:       o.MaxPerRegistry,
		GCGrace:              o.GCGrace,
		NoMatch:              controllers.NoMatchPolicy(o.NoMatchPolicy),
		VerificationDeadline: o.VerificationDeadline,
		StateTTL:             o.StateTTL,
		MaxSignatureBytes:    o.MaxSignatureBytes,
		MemoryBudget:         o.MemoryBudget,
		IntervalOverride:     o.IntervalOverride,
		Shard:                shard,
		PodWorkers:           o.PodWorkers,
		PolicyReports:        reports,
		ImageMetrics:         o.ImageMetrics,
		SecretAccess:         o.SecretAccess,
		RegistryConfig:       registryConfig(o.RegistryConfig),
		LogsOff:              !o.LogChecks,
		LogURLs:              o.LogURLs,
		LogInterval:          o.LogInterval,
		LogRollbackGrace:     o.LogRollbackGrace,
	}); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	logger.Info("starting", "version", versionString(), "shard", shard.String(), "insecureRegistries", strings.Join(o.InsecureRegistries, ","),
		"cloudCredentials", o.CloudCredentials, "cloudRegistries", strings.Join(o.CloudRegistries, ","),
		"secretAccess", o.SecretAccess.String(), "registryConfig", o.RegistryConfig,
		"maxConcurrentVerifications", o.MaxConcurrent,
		"maxVerificationsPerRegistry", controllers.PerRegistryLimit(o.MaxConcurrent, o.MaxPerRegistry), "gcGrace", o.GCGrace, "noMatchPolicy", o.NoMatchPolicy)
	return mgr.Start(ctx)
}

// registryConfig is the --registry-config file (nil: none).
func registryConfig(path string) *registry.ConfigFile {
	if path == "" {
		return nil
	}
	return registry.NewConfigFile(path)
}

// policyReportsEnabled decides --policy-reports, asking the API server's discovery whether it serves
// PolicyReports unless the flag is false, and logs the decision and why in one line.
func policyReportsEnabled(cfg *rest.Config, m policyreport.Mode) (bool, error) {
	served := false
	if m != policyreport.ModeOff {
		dc, err := discovery.NewDiscoveryClientForConfig(cfg)
		if err != nil {
			return false, fmt.Errorf("--policy-reports: %w", err)
		}
		if served, err = policyreport.Served(dc); err != nil {
			return false, fmt.Errorf("--policy-reports=%s: %w", m, err)
		}
	}
	enabled, why, err := m.Enabled(served)
	if err != nil {
		return false, err
	}
	ctrl.Log.WithName("setup").Info("PolicyReports", "enabled", enabled, "reason", why)
	return enabled, nil
}

// restConfig loads the configuration from --kubeconfig, else as controller-runtime finds it. Either way
// the client has no client-side rate limit (QPS -1, as ctrl.GetConfig sets it): the API server's
// priority and fairness is the limit. client-go's default of 5 requests a second (which
// clientcmd.BuildConfigFromFlags leaves) made --kubeconfig managers an order of magnitude slower.
func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		return ctrl.GetConfig()
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	unthrottled(cfg)
	return cfg, nil
}

// unthrottled removes client-go's default client-side rate limit, unless one is configured.
func unthrottled(cfg *rest.Config) {
	if cfg.QPS == 0 && cfg.RateLimiter == nil {
		cfg.QPS = -1
	}
}
