// Package scale is a scale benchmark of the sigwatch manager: a real control plane (envtest's
// kube-apiserver and etcd), a real OCI registry on loopback, thousands of key-signed images run by tens
// of thousands of pods, and the manager built from this tree (or any other build) as a separate process.
// It measures how long the manager takes to reach every verdict from a cold start, how long a forced
// re-verification of every SignedImage takes, what the manager asks of the registry and writes to the API
// server meanwhile, and its peak memory. `make bench-scale` runs it (see cmd/bench-scale); a smoke test
// runs a small size under the integration tag.
//
// The machine runs everything: the numbers compare builds of the manager on one machine, they are not
// absolute.
package scale

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/test/envtest"
	testregistry "github.com/sigwatch/sigwatch/test/registry"
	"github.com/sigwatch/sigwatch/test/sigstore"
)

// Defaults of Options.
const (
	DefaultDigests       = 2000
	DefaultPods          = 10000
	DefaultNamespaces    = 50
	DefaultRepositories  = 20
	DefaultClients       = 16
	DefaultSigners       = 8
	DefaultSettleTimeout = 10 * time.Minute
	// DefaultQuietTimeout bounds the wait, after a phase settled, for the manager to stop writing.
	DefaultQuietTimeout = 30 * time.Second
)

// Names of what the harness creates.
const (
	PolicyName   = "scale"
	KeyNamespace = "scale-keys"
	KeySecret    = "signing-key"
	KeySecretKey = "cosign.pub"
	// RepositoryPrefix is the path, in the registry, of the repositories the images are pushed to
	// (RepositoryPrefix + "app-<n>").
	RepositoryPrefix = "scale/"
)

// pollInterval is how often the watched SignedImages are checked while a phase settles (or less often:
// the harness waits at least four times as long as the previous check took). They are read from an informer
// cache: a watch costs the API server one event per change, where listing 2000 SignedImages every
// 250 ms took a large share of it and slowed down what was measured.
const pollInterval = 100 * time.Millisecond

// Options configure a run. The zero value of a field means its default, except for Unsigned.
type Options struct {
	// Out receives one line per phase ("phase=NAME key=value ..."); nil discards them.
	Out io.Writer
	// Progress also prints a progress line every 10 s while a phase settles.
	Progress bool

	// Digests is how many distinct images are pushed (default 2000), Pods how many pods run them (default
	// 10000, at least Digests: pod j runs digest j%Digests), Namespaces how many namespaces they spread
	// over (default 50: digest i and its pods live in namespace i%Namespaces), Repositories how many
	// repositories of the registry hold the images (default 20).
	Digests, Pods, Namespaces, Repositories int
	// Unsigned is how many digests are left unsigned (their verdict must be Verified=False). Negative
	// means 1% of Digests, at least 1 when Digests >= 10 (the default of cmd/bench-scale); 0 means
	// every digest is signed.
	Unsigned int

	// ManagerBinary is the sigwatch binary that runs `sigwatch manager`; empty builds ./cmd/sigwatch of
	// this source tree into a temporary directory.
	ManagerBinary string
	// ManagerArgs are extra flags of `sigwatch manager`, after the harness's own.
	ManagerArgs []string
	// ManagerEnv are extra NAME=value variables of the manager's environment (GOMEMLIMIT=460MiB, as the
	// Deployment sets it).
	ManagerEnv []string
	// KubeconfigEnv passes the kubeconfig to the manager as $KUBECONFIG instead of --kubeconfig. The
	// manager then loads it with controller-runtime's GetConfig, as it loads its in-cluster
	// configuration, without a client-side rate limit; with --kubeconfig, cmd/sigwatch builds its
	// configuration with clientcmd, and client-go's default limit (5 requests/s, bursts of 10, per
	// resource) applies.
	KubeconfigEnv bool
	// PolicyReports installs the PolicyReport CRD (config/crd/policyreport) before the manager starts,
	// so that it writes PolicyReports too (--policy-reports=auto): their writes count as the manager's.
	PolicyReports bool

	// SettleTimeout bounds each of the cold and forced phases (default 10 min).
	SettleTimeout time.Duration
	// QuietTimeout bounds the wait after a phase settled for the manager's writes to stop (default 30 s).
	QuietTimeout time.Duration
	// Clients is how many goroutines write to the API server at once (default 16), Signers how many push
	// and sign images at once (default 8).
	Clients, Signers int
	// Dir holds the kubeconfig and the manager's log; empty: a new temporary directory, kept after the
	// run so that the log can be read (its path is printed).
	Dir string
}

// DefaultOptions are the options of a default run (cmd/bench-scale without flags).
func DefaultOptions() Options {
	return Options{Digests: DefaultDigests, Pods: DefaultPods, Namespaces: DefaultNamespaces, Unsigned: -1}
}

func (o Options) withDefaults() (Options, error) {
	if o.Out == nil {
		o.Out = io.Discard
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.Digests, DefaultDigests)
	def(&o.Pods, DefaultPods)
	def(&o.Namespaces, DefaultNamespaces)
	def(&o.Repositories, DefaultRepositories)
	def(&o.Clients, DefaultClients)
	def(&o.Signers, DefaultSigners)
	if o.SettleTimeout == 0 {
		o.SettleTimeout = DefaultSettleTimeout
	}
	if o.QuietTimeout == 0 {
		o.QuietTimeout = DefaultQuietTimeout
	}
	if o.Unsigned < 0 {
		o.Unsigned = o.Digests / 100
		if o.Unsigned == 0 && o.Digests >= 10 {
			o.Unsigned = 1
		}
	}
	switch {
	case o.Digests < 0 || o.Pods < 0 || o.Namespaces < 0 || o.Repositories < 0 || o.Clients < 0 || o.Signers < 0:
		return o, errors.New("sizes must not be negative")
	case o.Pods < o.Digests:
		return o, fmt.Errorf("pods (%d) must be at least digests (%d): every digest runs in at least one pod", o.Pods, o.Digests)
	case o.Unsigned > o.Digests:
		return o, fmt.Errorf("unsigned (%d) must be at most digests (%d)", o.Unsigned, o.Digests)
	case o.Namespaces > o.Digests:
		return o, fmt.Errorf("namespaces (%d) must be at most digests (%d): every namespace runs a digest", o.Namespaces, o.Digests)
	}
	return o, nil
}

// Report is what a run measured. Run returns it, partly filled, also when it fails.
type Report struct {
	Digests, Unsigned, Pods, Namespaces int
	// Dir holds the kubeconfig and ManagerLog, the manager's output.
	Dir, ManagerLog string
	// Manager is the binary that ran.
	Manager string

	// PushSeconds is how long pushing and signing the images took.
	PushSeconds float64
	// Creation is the plain object creation before the manager starts.
	Creation Creation
	// Cold is from the manager's start until every verdict and the policy's counts are right; Forced
	// from the first reverify annotation until every SignedImage handled it; Revoked from the creation
	// of a SignatureRevocation of the signing key until every signed image is SignatureRevoked (and the
	// policy's counts say so), Restored from its deletion until every verdict is back.
	Cold, Forced, Revoked, Restored Phase

	// PeakRSSBytes is the manager's VmHWM just before it was stopped; MaxSampledRSSBytes the largest
	// VmRSS sampled every second (the kernel updates VmHWM lazily, so it may be a little lower).
	PeakRSSBytes, MaxSampledRSSBytes int64
	// SignedImageWritesPerSecond is the API server's rate for the harness's own SignedImage writes
	// (create, then a status patch like the manager's, 16 writers), measured before the manager
	// starts: custom resources are JSON and cost the API server several times a pod's protobuf write.
	// SignedImageWriteRatio is the manager's cold write rate over it.
	SignedImageWritesPerSecond, SignedImageWriteRatio float64
	// ColdWritesPerSecond is the manager's API write rate during the cold phase; WriteRateRatio is it
	// divided by Creation.WritesPerSecond.
	ColdWritesPerSecond, WriteRateRatio float64
	// WrongVerdicts is how many SignedImages were seen, at any poll, with the opposite of their expected
	// verdict (Verified=False for a signed digest, True for an unsigned one).
	WrongVerdicts int
	// SignedImages is how many SignedImages the last poll found.
	SignedImages int
}

// Creation is the harness's own object creation: namespaces, the key Secret, the policy, ReplicaSets,
// pods and pod statuses.
type Creation struct {
	// Writes is how many writes the harness made (a pod counts twice: create and status update).
	Writes int
	// Seconds is how long they took, with Clients writers at once; WritesPerSecond their rate.
	Seconds, WritesPerSecond float64
	// APIServerWrites are the API server's write counters over the phase: the harness's writes and the
	// API server's own (leases).
	APIServerWrites APIWrites
}

// Phase is one measured phase of the manager's work.
type Phase struct {
	// Seconds is how long it took to settle.
	Seconds float64
	// StatusesSeconds is, in the revocation phases, how long until every SignedImage's status had the
	// phase's verdict (the policy's counts, written every 2 s, follow).
	StatusesSeconds float64
	// AfterTriggerSeconds is, in the forced phase, how long it took to settle after the last
	// annotation was written (the annotations themselves take the API server a while).
	AfterTriggerSeconds float64
	// APIWrites are the write requests the API server answered from the phase's start until it settled,
	// the harness's own writes taken out; they are the manager's, and the API server's own lease
	// renewals (resource leases). LateWrites are those from then until the writes stopped (at most
	// QuietTimeout later, after QuietSeconds).
	APIWrites, LateWrites APIWrites
	QuietSeconds          float64
	// HarnessWrites is how many writes the harness made in the phase (its reverify annotations).
	HarnessWrites int
	// ManagerWrites is APIWrites without the API server's lease renewals.
	ManagerWrites int
	// Registry counts the registry's requests, by "METHOD kind" ("HEAD manifests", "GET referrers",
	// "GET blobs", "GET other": the /v2/ ping), from the phase's start until the writes stopped.
	Registry map[string]int
	// ManagerMetrics are increases of the manager's own counters over the phase (see managerCounters).
	ManagerMetrics map[string]int
}

// RegistryRequests is how many requests the registry served in the phase.
func (p Phase) RegistryRequests() int { return total(p.Registry) }

// RegistryGets is how many manifest and blob GETs the registry served in the phase.
func (p Phase) RegistryGets() int { return p.Registry["GET manifests"] + p.Registry["GET blobs"] }

// backgroundResources are written by the API server itself, whatever the manager does: its identity
// lease is renewed every 10 s.
var backgroundResources = []string{"leases"}

// Run runs the benchmark and stops everything it started before it returns.
func Run(ctx context.Context, o Options) (*Report, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	b := &bench{o: o, out: o.Out, rep: &Report{Digests: o.Digests, Unsigned: o.Unsigned, Pods: o.Pods, Namespaces: o.Namespaces},
		wrong: map[string]bool{}}
	err = b.run(ctx)
	if stopErr := b.stop(); stopErr != nil {
		err = errors.Join(err, stopErr)
	}
	b.rep.WrongVerdicts = len(b.wrong)
	if err == nil && b.rep.WrongVerdicts > 0 {
		err = fmt.Errorf("%d SignedImages had the wrong verdict at some point", b.rep.WrongVerdicts)
	}
	return b.rep, err
}

type bench struct {
	o   Options
	out io.Writer
	rep *Report

	env      *envtest.Environment
	c        client.Client // the admin client, not rate limited
	watched  cache.Cache   // SignedImages and the policy, watched: what settle reads
	metrics  *apiMetrics
	reg      *testregistry.Registry
	mgr      *manager
	cleanups []func() error

	keyPEM   []byte // the signing key's public key
	digests  []digest
	expected map[string]*digest // by "namespace/repository@digest"
	// mgrCounters are the manager's counters at the end of the previous phase.
	mgrCounters map[string]int
	memoryRead  bool
	// wrong are the SignedImages seen with the opposite verdict.
	wrong map[string]bool
	// statusesAt is when settle first saw every verdict right, before the policy's counts (reset per
	// phase).
	statusesAt time.Time
	// revocation is the phase of the signing key's revocation: revoking (every signed image is to turn
	// SignatureRevoked) or restoring (a SignatureRevoked one is not yet restored, not wrong); "" otherwise.
	revocation string
}

// digest is one pushed image and where it runs.
type digest struct {
	index     int
	ref       name.Digest
	signed    bool
	namespace string
	rs        string // its ReplicaSet's name
}

func (d *digest) key() string {
	return d.namespace + "/" + d.ref.Context().Name() + "@" + d.ref.DigestStr()
}

func (b *bench) line(phase string, kv ...any) {
	var sb strings.Builder
	sb.WriteString("phase=" + phase)
	for i := 0; i+1 < len(kv); i += 2 {
		v := kv[i+1]
		switch x := v.(type) {
		case float64:
			v = fmt.Sprintf("%.2f", x)
		case time.Duration:
			v = fmt.Sprintf("%.2f", x.Seconds())
		}
		fmt.Fprintf(&sb, " %s=%v", kv[i], v)
	}
	fmt.Fprintln(b.out, sb.String())
}

func (b *bench) run(ctx context.Context) error {
	if err := b.setup(ctx); err != nil {
		return err
	}
	if err := b.push(ctx); err != nil {
		return err
	}
	if err := b.create(ctx); err != nil {
		return err
	}
	if err := b.reference(ctx); err != nil {
		return err
	}
	if err := b.cold(ctx); err != nil {
		return err
	}
	if err := b.forced(ctx); err != nil {
		return err
	}
	if err := b.revoke(ctx); err != nil {
		return err
	}
	b.memory()
	b.ratio()
	return nil
}

// setup builds the manager (unless given), starts the control plane and the registry.
func (b *bench) setup(ctx context.Context) error {
	start := time.Now()
	b.rep.Dir = b.o.Dir
	if b.rep.Dir == "" {
		dir, err := os.MkdirTemp("", "sigwatch-scale-")
		if err != nil {
			return err
		}
		b.rep.Dir = dir
	}
	b.rep.Manager = b.o.ManagerBinary
	if b.rep.Manager == "" {
		buildDir, err := os.MkdirTemp("", "sigwatch-scale-build-")
		if err != nil {
			return err
		}
		b.cleanups = append(b.cleanups, func() error { return os.RemoveAll(buildDir) })
		if b.rep.Manager, err = buildManager(ctx, buildDir); err != nil {
			return err
		}
		b.line("build", "manager", b.rep.Manager, "seconds", time.Since(start))
	} else if _, err := os.Stat(b.rep.Manager); err != nil {
		return fmt.Errorf("the manager binary: %w", err)
	}

	start = time.Now()
	env, err := envtest.Start()
	if err != nil {
		return err
	}
	b.env = env
	b.cleanups = append(b.cleanups, env.Stop)
	if b.o.PolicyReports {
		if _, err := crenvtest.InstallCRDs(env.Config, crenvtest.CRDInstallOptions{
			Paths: []string{filepath.Join(envtest.RepoRoot(), "config", "crd", "policyreport")}, ErrorIfPathMissing: true,
		}); err != nil {
			return fmt.Errorf("installing the PolicyReport CRD: %w", err)
		}
	}
	kubeconfig, err := env.KubeConfig()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b.rep.Dir, "kubeconfig"), kubeconfig, 0o600); err != nil {
		return err
	}
	// The harness's client: no client-side rate limit, Clients goroutines share it.
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = -1, 0
	if b.c, err = client.New(cfg, client.Options{Scheme: env.Scheme}); err != nil {
		return fmt.Errorf("creating the harness's client: %w", err)
	}
	if b.metrics, err = newAPIMetrics(cfg); err != nil {
		return err
	}
	if err := b.watch(ctx, cfg); err != nil {
		return err
	}
	if _, err := b.metrics.scrape(ctx); err != nil {
		return err
	}
	reg, err := testregistry.Serve(true)
	if err != nil {
		return fmt.Errorf("starting the registry: %w", err)
	}
	b.reg = reg
	b.cleanups = append(b.cleanups, func() error { reg.Stop(); return nil })
	b.line("setup", "apiserver", env.Config.Host, "registry", reg.Host, "dir", b.rep.Dir, "seconds", time.Since(start))
	return nil
}

// watch starts the informer cache that settle reads, on SignedImages and the policy.
func (b *bench) watch(ctx context.Context, cfg *rest.Config) error {
	c, err := cache.New(cfg, cache.Options{Scheme: b.env.Scheme})
	if err != nil {
		return fmt.Errorf("creating the harness's cache: %w", err)
	}
	for _, obj := range []client.Object{&sigwatchv1alpha1.SignedImage{}, &sigwatchv1alpha1.ImageSignaturePolicy{}} {
		if _, err := c.GetInformer(ctx, obj); err != nil {
			return fmt.Errorf("watching %T: %w", obj, err)
		}
	}
	watchCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- c.Start(watchCtx) }()
	b.cleanups = append(b.cleanups, func() error { stop(); return <-done })
	if !c.WaitForCacheSync(ctx) {
		return errors.New("the harness's watches did not sync")
	}
	b.watched = c
	return nil
}

// push pushes the images and signs all but the unsigned ones (legacy .sig, with a key, no log).
func (b *bench) push(ctx context.Context) error {
	start := time.Now()
	signer, err := sigstore.NewKeySigner(nil)
	if err != nil {
		return err
	}
	w := &sigstore.Writer{Registry: b.reg.Host}
	unsigned := map[int]bool{}
	for k := range b.o.Unsigned {
		unsigned[k*b.o.Digests/b.o.Unsigned] = true // spread over the digests, so over repositories and namespaces
	}
	b.digests = make([]digest, b.o.Digests)
	var signed atomic.Int64
	err = parallel(ctx, b.o.Digests, b.o.Signers, func(ctx context.Context, i int) error {
		repo := fmt.Sprintf("%sapp-%d", RepositoryPrefix, i%b.o.Repositories)
		ref, err := w.PushRandomImage(ctx, fmt.Sprintf("%s:img-%d", repo, i))
		if err != nil {
			return err
		}
		d := &b.digests[i]
		*d = digest{index: i, ref: ref, signed: !unsigned[i], namespace: namespaceName(i % b.o.Namespaces),
			rs: fmt.Sprintf("app-%d-%08x", i, uint32(i)*2654435761)}
		if !d.signed {
			return nil
		}
		if _, err := w.SignLegacy(ctx, ref, signer, sigstore.SignOptions{}); err != nil {
			return fmt.Errorf("signing %s: %w", ref, err)
		}
		signed.Add(1)
		return nil
	})
	if err != nil {
		return fmt.Errorf("pushing and signing the images: %w", err)
	}
	b.expected = map[string]*digest{}
	for i := range b.digests {
		b.expected[b.digests[i].key()] = &b.digests[i]
	}
	b.rep.PushSeconds = time.Since(start).Seconds()
	b.line("push", "images", b.o.Digests, "repositories", min(b.o.Repositories, b.o.Digests), "signed", signed.Load(),
		"unsigned", b.o.Digests-int(signed.Load()), "format", "legacy-.sig", "signers", b.o.Signers,
		"registry_requests", requestTotal(b.reg.Counts()),
		"seconds", time.Since(start))

	b.keyPEM = signer.PublicKeyPEM()
	return nil
}

func namespaceName(i int) string { return fmt.Sprintf("scale-%03d", i) }

// create creates the namespaces, the key Secret, the policy, a ReplicaSet per digest and the pods, with
// Clients writers at once, and measures the rate the API server sustains.
func (b *bench) create(ctx context.Context) error {
	before, err := b.metrics.scrape(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	var writes atomic.Int64
	write := func(err error) error {
		if err == nil {
			writes.Add(1)
		}
		return err
	}
	if err := write(b.c.Create(ctx, envtest.Namespace(KeyNamespace, nil))); err != nil {
		return fmt.Errorf("creating namespace %s: %w", KeyNamespace, err)
	}
	err = parallel(ctx, b.o.Namespaces, b.o.Clients, func(ctx context.Context, i int) error {
		if err := write(b.c.Create(ctx, envtest.Namespace(namespaceName(i), nil))); err != nil {
			return fmt.Errorf("creating namespace %s: %w", namespaceName(i), err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: KeyNamespace, Name: KeySecret},
		Data: map[string][]byte{KeySecretKey: b.keyPEM}}
	if err := write(b.c.Create(ctx, secret)); err != nil {
		return fmt.Errorf("creating the key Secret: %w", err)
	}
	policy := &sigwatchv1alpha1.ImageSignaturePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: PolicyName},
		Spec: sigwatchv1alpha1.ImageSignaturePolicySpec{
			// `**` matches across path segments (api/v1alpha1: images).
			Images: []sigwatchv1alpha1.ImagePattern{sigwatchv1alpha1.ImagePattern(b.reg.Host + "/" + RepositoryPrefix + "**")},
			Authorities: []sigwatchv1alpha1.Authority{{Name: "scale-key",
				Key: &sigwatchv1alpha1.KeyAuthority{SecretRef: &sigwatchv1alpha1.SecretKeyReference{
					Namespace: KeyNamespace, Name: KeySecret, Key: KeySecretKey}},
				// The images are signed with a key and no transparency log (cosign --tlog-upload=false).
				TransparencyLog: &sigwatchv1alpha1.TransparencyLogPolicy{Mode: sigwatchv1alpha1.TransparencyLogDisabled}}},
		},
	}
	if err := write(b.c.Create(ctx, policy)); err != nil {
		return fmt.Errorf("creating the policy: %w", err)
	}
	err = parallel(ctx, b.o.Digests, b.o.Clients, func(ctx context.Context, i int) error {
		return write(b.createReplicaSet(ctx, &b.digests[i]))
	})
	if err != nil {
		return err
	}
	err = parallel(ctx, b.o.Pods, b.o.Clients, func(ctx context.Context, j int) error {
		return b.createPod(ctx, &b.digests[j%b.o.Digests], j, write)
	})
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	after, err := b.metrics.scrape(ctx)
	if err != nil {
		return err
	}
	c := &b.rep.Creation
	c.Writes, c.Seconds, c.APIServerWrites = int(writes.Load()), secs, after.delta(before)
	c.WritesPerSecond = float64(c.Writes) / secs
	b.line("create", "namespaces", b.o.Namespaces+1, "replicasets", b.o.Digests, "pods", b.o.Pods, "clients", b.o.Clients,
		"writes", c.Writes, "seconds", secs, "writes_per_s", c.WritesPerSecond,
		"apiserver_writes", c.APIServerWrites.Total(), "background_writes", c.APIServerWrites.Total()-c.Writes)
	return nil
}

// ReferenceNamespace holds the SignedImages the harness writes to measure the API server's rate for
// them; they are deleted before the manager starts.
const ReferenceNamespace = "scale-reference"

// reference measures what the API server sustains for SignedImage writes like the manager's: as many
// SignedImages as digests, each created and given a status (a merge patch of a Verified condition),
// by Clients writers; then deletes them and waits until they are gone.
func (b *bench) reference(ctx context.Context) error {
	if err := b.c.Create(ctx, envtest.Namespace(ReferenceNamespace, nil)); err != nil {
		return fmt.Errorf("creating namespace %s: %w", ReferenceNamespace, err)
	}
	start := time.Now()
	err := parallel(ctx, b.o.Digests, b.o.Clients, func(ctx context.Context, i int) error {
		d := &b.digests[i]
		si := &sigwatchv1alpha1.SignedImage{ObjectMeta: metav1.ObjectMeta{Namespace: ReferenceNamespace, Name: fmt.Sprintf("reference-%05d", i)},
			Spec: sigwatchv1alpha1.SignedImageSpec{Image: d.ref.Context().Name(), Digest: d.ref.DigestStr()}}
		if err := b.c.Create(ctx, si); err != nil {
			return fmt.Errorf("creating SignedImage %s/%s: %w", si.Namespace, si.Name, err)
		}
		before := si.DeepCopy()
		meta.SetStatusCondition(&si.Status.Conditions, metav1.Condition{Type: sigwatchv1alpha1.VerifiedCondition, Status: metav1.ConditionTrue,
			Reason: sigwatchv1alpha1.VerifiedReason, Message: "reference write of the scale benchmark", ObservedGeneration: si.Generation})
		if err := b.c.Status().Patch(ctx, si, client.MergeFrom(before)); err != nil {
			return fmt.Errorf("patching the status of SignedImage %s/%s: %w", si.Namespace, si.Name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	b.rep.SignedImageWritesPerSecond = float64(2*b.o.Digests) / secs
	if err := b.c.DeleteAllOf(ctx, &sigwatchv1alpha1.SignedImage{}, client.InNamespace(ReferenceNamespace)); err != nil {
		return fmt.Errorf("deleting the reference SignedImages: %w", err)
	}
	for {
		var list sigwatchv1alpha1.SignedImageList
		if err := b.c.List(ctx, &list, client.InNamespace(ReferenceNamespace), client.Limit(1)); err != nil {
			return fmt.Errorf("listing the reference SignedImages: %w", err)
		}
		if len(list.Items) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	b.line("reference", "signedimages", b.o.Digests, "writes", 2*b.o.Digests, "seconds", secs,
		"signedimage_writes_per_s", b.rep.SignedImageWritesPerSecond, "deleted", true)
	return nil
}

func podLabels(d *digest) map[string]string {
	return map[string]string{"app": fmt.Sprintf("app-%d", d.index)}
}

func podSpec(d *digest) corev1.PodSpec {
	return corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: d.ref.String()}}}
}

// createReplicaSet creates the digest's ReplicaSet, owned by a Deployment that does not exist (nothing
// reconciles either in envtest; sigwatch reads the ReplicaSet's owner reference only).
func (b *bench) createReplicaSet(ctx context.Context, d *digest) error {
	labels := podLabels(d)
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: d.namespace, Name: d.rs, Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: labels["app"],
				UID: types.UID(fmt.Sprintf("00000000-0000-4000-8000-%012d", d.index)), Controller: ptr.To(true)}}},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec(d)}},
	}
	if err := b.c.Create(ctx, rs); err != nil {
		return fmt.Errorf("creating ReplicaSet %s/%s: %w", rs.Namespace, rs.Name, err)
	}
	return nil
}

// createPod creates pod j, which runs d, and sets its status as a kubelet would: Running, its container
// ready, running the digest.
func (b *bench) createPod(ctx context.Context, d *digest, j int, write func(error) error) error {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: d.namespace, Name: fmt.Sprintf("%s-%05d", d.rs, j), Labels: podLabels(d),
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: d.rs,
				UID: types.UID(fmt.Sprintf("00000000-0000-4000-9000-%012d", d.index)), Controller: ptr.To(true)}}},
		Spec: podSpec(d),
	}
	if err := write(b.c.Create(ctx, pod)); err != nil {
		return fmt.Errorf("creating pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
		// imageref.FromContainerStatus takes an imageID "repo@digest", with or without a runtime prefix.
		Name: "app", Image: d.ref.String(), ImageID: d.ref.String(), Ready: true,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}},
	}}}
	if err := write(b.c.Status().Update(ctx, pod)); err != nil {
		return fmt.Errorf("setting the status of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

// cold starts the manager and waits until every verdict and the policy's counts are right.
//
// From here on the harness writes nothing but its reverify annotations (forced phase), which it
// subtracts; it only lists SignedImages and reads the policy, so the API server's write counters over a
// phase are the manager's writes and the API server's own lease renewals.
func (b *bench) cold(ctx context.Context) error {
	b.reg.ResetCounts()
	_ = b.reg.TakeRequestLog()
	before, err := b.metrics.scrape(ctx)
	if err != nil {
		return err
	}
	b.mgr, err = startManager(b.rep.Manager, filepath.Join(b.rep.Dir, "kubeconfig"), b.rep.Dir, b.o.KubeconfigEnv, b.o.ManagerArgs, b.o.ManagerEnv)
	if err != nil {
		return err
	}
	b.rep.ManagerLog = b.mgr.logPath
	b.cleanups = append(b.cleanups, b.mgr.terminate)
	b.line("manager", "pid", b.mgr.cmd.Process.Pid, "log", b.mgr.logPath, "metrics", "http://"+b.mgr.metricsAddr+"/metrics",
		"kubeconfig_env", b.o.KubeconfigEnv, "args", fmt.Sprintf("%q", strings.Join(b.mgr.cmd.Args[1:], " ")))
	t, err := b.settle(ctx, "cold", b.mgr.started, "")
	p := &b.rep.Cold
	p.Seconds = time.Since(b.mgr.started).Seconds()
	if err != nil {
		return err
	}
	if err := b.measure(ctx, p, before, nil, 0); err != nil {
		return err
	}
	b.line("cold", "seconds", p.Seconds, "signedimages", t.found, "verified", t.verified, "failed", t.failed,
		"policy", t.policy, "manager_writes", p.ManagerWrites, "manager_writes_per_s", float64(p.ManagerWrites)/p.Seconds,
		"late_writes", p.LateWrites.Total(backgroundResources...), "quiet_after_s", p.QuietSeconds,
		"client_throttling_log_lines", countLines(b.mgr.logPath, "client-side throttling"))
	b.phaseDetails("cold", p)
	return nil
}

// forced annotates every SignedImage with a new reverify token and waits until each handled it.
func (b *bench) forced(ctx context.Context) error {
	var list sigwatchv1alpha1.SignedImageList
	if err := b.c.List(ctx, &list); err != nil {
		return fmt.Errorf("listing the SignedImages: %w", err)
	}
	token := fmt.Sprintf("scale-%d", time.Now().UnixNano())
	patch, err := jsonMergePatchAnnotation(sigwatchv1alpha1.ReverifyAnnotation, token)
	if err != nil {
		return err
	}
	b.reg.ResetCounts()
	before, err := b.metrics.scrape(ctx)
	if err != nil {
		return err
	}
	regBefore := b.reg.Counts()
	start := time.Now()
	var patched atomic.Int64
	err = parallel(ctx, len(list.Items), b.o.Clients, func(ctx context.Context, i int) error {
		si := &list.Items[i]
		if err := b.c.Patch(ctx, si, client.RawPatch(types.MergePatchType, patch)); err != nil {
			return fmt.Errorf("annotating SignedImage %s/%s: %w", si.Namespace, si.Name, err)
		}
		patched.Add(1)
		return nil
	})
	annotated := time.Now()
	annotateSecs := annotated.Sub(start).Seconds()
	if err != nil {
		return err
	}
	b.statusesAt = time.Time{}
	t, err := b.settle(ctx, "forced", start, token)
	p := &b.rep.Forced
	p.StatusesSeconds = b.statusesAt.Sub(start).Seconds()
	p.Seconds = time.Since(start).Seconds()
	p.AfterTriggerSeconds = time.Since(annotated).Seconds()
	p.HarnessWrites = int(patched.Load())
	if err != nil {
		return err
	}
	if err := b.measure(ctx, p, before, regBefore, p.HarnessWrites); err != nil {
		return err
	}
	b.line("forced", "token", token, "seconds", p.Seconds, "statuses_seconds", p.StatusesSeconds, "annotate_seconds", annotateSecs,
		"settled_after_last_annotation_s", p.AfterTriggerSeconds, "annotated", p.HarnessWrites,
		"signedimages", t.found, "verified", t.verified, "failed", t.failed, "policy", t.policy,
		"manager_writes", p.ManagerWrites, "status_patches", p.APIWrites.Count("PATCH", "signedimages", "status")+p.LateWrites.Count("PATCH", "signedimages", "status"),
		"late_writes", p.LateWrites.Total(backgroundResources...), "quiet_after_s", p.QuietSeconds,
		"registry_manifest_or_blob_gets", p.RegistryGets())
	b.phaseDetails("forced", p)
	return nil
}

// The revocation phases (bench.revocation).
const (
	revoking  = "revoking"
	restoring = "restoring"
)

// revoke creates a SignatureRevocation of the key every signed image is signed with, waits until each is
// SignatureRevoked, then deletes it and waits until each is verified again: what applying and lifting a
// revocation costs, in time, status writes and registry requests (none are needed).
func (b *bench) revoke(ctx context.Context) error {
	rev := &sigwatchv1alpha1.SignatureRevocation{ObjectMeta: metav1.ObjectMeta{Name: "scale-key-leak"},
		Spec: sigwatchv1alpha1.SignatureRevocationSpec{Reason: "scale benchmark: the signing key leaked",
			Signatures: []sigwatchv1alpha1.RevokedSignatures{{Key: &sigwatchv1alpha1.RevokedKey{PublicKey: string(b.keyPEM)}}}}}
	for _, phase := range []struct {
		name, mode string
		p          *Phase
		act        func() error
	}{
		{"revoked", revoking, &b.rep.Revoked, func() error { return b.c.Create(ctx, rev) }},
		{"restored", restoring, &b.rep.Restored, func() error { return b.c.Delete(ctx, rev) }},
	} {
		b.reg.ResetCounts()
		before, err := b.metrics.scrape(ctx)
		if err != nil {
			return err
		}
		regBefore := b.reg.Counts()
		b.revocation, b.statusesAt = phase.mode, time.Time{}
		start := time.Now()
		if err := phase.act(); err != nil {
			return fmt.Errorf("%s phase: %w", phase.name, err)
		}
		t, err := b.settle(ctx, phase.name, start, "")
		phase.p.Seconds = time.Since(start).Seconds()
		phase.p.StatusesSeconds = b.statusesAt.Sub(start).Seconds()
		if err != nil {
			return err
		}
		if err := b.measure(ctx, phase.p, before, regBefore, 0); err != nil {
			return err
		}
		p := phase.p
		b.line(phase.name, "seconds", p.Seconds, "statuses_seconds", p.StatusesSeconds, "signedimages", t.found, "verified", t.verified, "failed", t.failed, "policy", t.policy,
			"manager_writes", p.ManagerWrites, "status_patches", p.APIWrites.Count("PATCH", "signedimages", "status")+p.LateWrites.Count("PATCH", "signedimages", "status"),
			"registry_requests", total(p.Registry))
		b.phaseDetails(phase.name, p)
	}
	b.revocation = ""
	return nil
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// measure fills in the API writes of a phase (until now, when it settled), waits for the manager's
// writes to stop and fills in the late writes, the registry's requests and the manager's counters.
// harnessPatches is how many reverify annotations the harness made in the phase.
func (b *bench) measure(ctx context.Context, p *Phase, before requestCounts, regBefore map[string]int, harnessPatches int) error {
	settledCounts, err := b.metrics.scrape(ctx)
	if err != nil {
		return err
	}
	p.APIWrites = settledCounts.delta(before).without("PATCH", "signedimages", "", harnessPatches)
	p.ManagerWrites = p.APIWrites.Total(backgroundResources...)
	// Quiet: two scrapes a second apart without a write other than the API server's own.
	start, last := time.Now(), settledCounts
	for time.Since(start) < b.o.QuietTimeout {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		now, err := b.metrics.scrape(ctx)
		if err != nil {
			return err
		}
		changed := now.delta(last).Total(backgroundResources...) > 0
		last = now
		if !changed {
			break
		}
	}
	p.QuietSeconds = time.Since(start).Seconds()
	p.LateWrites = last.delta(settledCounts)
	p.Registry = map[string]int{}
	for k, n := range b.reg.Counts() {
		if strings.Contains(k, " ") && n-regBefore[k] > 0 {
			p.Registry[k] = n - regBefore[k]
		}
	}
	p.ManagerMetrics = b.managerCounters(ctx)
	return nil
}

func (b *bench) phaseDetails(phase string, p *Phase) {
	b.line(phase+".api_writes", "total", p.APIWrites.Total(), "writes", p.APIWrites.String())
	if len(p.LateWrites) > 0 {
		b.line(phase+".late_api_writes", "total", p.LateWrites.Total(), "writes", p.LateWrites.String())
	}
	b.line(phase+".registry", "requests", formatCounts(p.Registry))
	if len(p.ManagerMetrics) > 0 {
		b.line(phase+".manager_metrics", "counters", formatCounts(p.ManagerMetrics))
	}
}

// memory reads the manager's peak RSS.
func (b *bench) memory() {
	b.memoryRead = true
	hwm, sampled, err := b.mgr.memory()
	b.rep.PeakRSSBytes, b.rep.MaxSampledRSSBytes = hwm, sampled
	if err != nil {
		b.line("memory", "error", fmt.Sprintf("%q", err.Error()), "max_sampled_rss_mib", mib(sampled))
		return
	}
	b.line("memory", "vmhwm_mib", mib(hwm), "max_sampled_rss_mib", mib(sampled))
}

// ratio compares the manager's cold write rate with what the API server sustained for plain creation.
func (b *bench) ratio() {
	b.rep.ColdWritesPerSecond = float64(b.rep.Cold.ManagerWrites) / b.rep.Cold.Seconds
	if b.rep.Creation.WritesPerSecond > 0 {
		b.rep.WriteRateRatio = b.rep.ColdWritesPerSecond / b.rep.Creation.WritesPerSecond
	}
	if b.rep.SignedImageWritesPerSecond > 0 {
		b.rep.SignedImageWriteRatio = b.rep.ColdWritesPerSecond / b.rep.SignedImageWritesPerSecond
	}
	b.line("ratio", "cold_manager_writes_per_s", b.rep.ColdWritesPerSecond, "creation_writes_per_s", b.rep.Creation.WritesPerSecond,
		"ratio", fmt.Sprintf("%.4f", b.rep.WriteRateRatio), "signedimage_writes_per_s", b.rep.SignedImageWritesPerSecond,
		"signedimage_ratio", fmt.Sprintf("%.4f", b.rep.SignedImageWriteRatio))
}

// stop stops the manager, the registry and the control plane. The manager's memory is read first if a
// failed phase left it unread.
func (b *bench) stop() error {
	if b.mgr != nil && !b.memoryRead {
		b.memory()
	}
	start := time.Now()
	var errs []error
	for i := len(b.cleanups) - 1; i >= 0; i-- {
		if err := b.cleanups[i](); err != nil {
			errs = append(errs, err)
		}
	}
	b.cleanups = nil
	if b.env != nil {
		b.line("stop", "seconds", time.Since(start))
	}
	return errors.Join(errs...)
}

// tally is what one poll saw.
type tally struct {
	found, verified, failed, pending, missing, unexpected, wrong, reverifyPending int
	policy                                                                        string
	policyOK                                                                      bool
	reasons                                                                       map[string]int
}

func (t tally) settled() bool { return t.verdictsSettled() && t.policyOK }

// verdictsSettled: every SignedImage has its verdict (and handled the token), whatever the policy's
// counts say yet.
func (t tally) verdictsSettled() bool {
	return t.missing == 0 && t.pending == 0 && t.wrong == 0 && t.unexpected == 0 && t.reverifyPending == 0
}

func (t tally) String() string {
	return fmt.Sprintf("signedimages=%d verified=%d failed=%d pending=%d missing=%d wrong=%d unexpected=%d reverify_pending=%d policy=%s verdicts=%s",
		t.found, t.verified, t.failed, t.pending, t.missing, t.wrong, t.unexpected, t.reverifyPending, t.policy, formatCounts(t.reasons))
}

// settle polls until every expected SignedImage has its expected verdict (and handled token, if set),
// none other exists and the policy's counts are right.
func (b *bench) settle(ctx context.Context, phase string, start time.Time, token string) (tally, error) {
	ctx, cancel := context.WithTimeout(ctx, b.o.SettleTimeout)
	defer cancel()
	var t tally
	nextProgress := time.Now().Add(10 * time.Second)
	for {
		pollStart := time.Now()
		var err error
		t, err = b.poll(ctx, token)
		if err == nil && b.statusesAt.IsZero() && t.verdictsSettled() {
			b.statusesAt = time.Now()
		}
		if err == nil && t.settled() {
			return t, nil
		}
		if aliveErr := b.mgr.alive(); aliveErr != nil {
			return t, fmt.Errorf("%s phase: %w", phase, aliveErr)
		}
		if b.o.Progress && time.Now().After(nextProgress) {
			fmt.Fprintf(b.out, "progress phase=%s t=%.0fs %s\n", phase, time.Since(start).Seconds(), t)
			nextProgress = time.Now().Add(10 * time.Second)
		}
		wait := max(pollInterval, 4*time.Since(pollStart))
		select {
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
			return t, fmt.Errorf("%s phase did not settle within %s (%v): last poll %s; manager log %s", phase, b.o.SettleTimeout, err, t, b.mgr.logPath)
		case <-time.After(wait):
		}
	}
}

// poll lists the SignedImages and reads the policy.
func (b *bench) poll(ctx context.Context, token string) (tally, error) {
	t := tally{reasons: map[string]int{}}
	var list sigwatchv1alpha1.SignedImageList
	// Read only: no copy of every SignedImage at each check (with 10,000 of them, copies took the
	// harness most of a core, which the API server and the manager then lacked).
	if err := b.watched.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return t, fmt.Errorf("listing the SignedImages: %w", err)
	}
	seen := map[string]bool{}
	for i := range list.Items {
		si := &list.Items[i]
		key := si.Namespace + "/" + si.Spec.Image + "@" + si.Spec.Digest
		d, ok := b.expected[key]
		if !ok || seen[key] {
			t.unexpected++
			continue
		}
		seen[key] = true
		t.found++
		cond := meta.FindStatusCondition(si.Status.Conditions, sigwatchv1alpha1.VerifiedCondition)
		if cond == nil {
			t.pending++
			t.reasons["none"]++
			continue
		}
		t.reasons[string(cond.Status)+"/"+cond.Reason]++
		want := metav1.ConditionFalse
		if d.signed && b.revocation != revoking {
			want = metav1.ConditionTrue
		}
		revoked := cond.Reason == sigwatchv1alpha1.SignatureRevokedReason
		switch {
		case cond.Status == want && want == metav1.ConditionTrue:
			t.verified++
		case cond.Status == want && d.signed && !revoked:
			t.pending++ // still verified: not revoked yet
		case cond.Status == want:
			t.failed++
		case cond.Status == metav1.ConditionUnknown, b.revocation == restoring && revoked,
			b.revocation == revoking && d.signed && cond.Status == metav1.ConditionTrue:
			t.pending++ // not judged yet, not revoked yet, or not restored yet
		default:
			t.wrong++
			b.wrong[key] = true
		}
		if token != "" && si.Status.LastHandledReverify != token {
			t.reverifyPending++
		}
	}
	t.missing = len(b.expected) - t.found
	b.rep.SignedImages = len(list.Items)
	var p sigwatchv1alpha1.ImageSignaturePolicy
	if err := b.watched.Get(ctx, client.ObjectKey{Name: PolicyName}, &p); err != nil {
		return t, fmt.Errorf("reading the policy: %w", err)
	}
	s := p.Status
	t.policy = fmt.Sprintf("matched:%d,verified:%d,failed:%d,unknown:%d", s.MatchedImages, s.VerifiedImages, s.FailedImages, s.UnknownImages)
	verified, failed := b.o.Digests-b.o.Unsigned, b.o.Unsigned
	if b.revocation == revoking {
		verified, failed = 0, b.o.Digests
	}
	t.policyOK = int(s.MatchedImages) == b.o.Digests && int(s.VerifiedImages) == verified &&
		int(s.FailedImages) == failed && s.UnknownImages == 0
	return t, nil
}

// managerCounters reads the manager's own counters: reconciles by controller, verifications by
// result, verdict cache hits, deferred verifications, registry requests by method. They are cumulative;
// the cold phase starts at 0, the forced phase's are deltas from the cold phase's.
func (b *bench) managerCounters(ctx context.Context) map[string]int {
	all, err := scrapeManager(ctx, b.mgr.metricsAddr)
	if err != nil {
		b.line("manager_metrics", "error", fmt.Sprintf("%q", err.Error()))
		return nil
	}
	out := map[string]int{}
	for k, v := range all {
		if d := v - b.mgrCounters[k]; d > 0 {
			out[k] = d
		}
	}
	b.mgrCounters = all
	return out
}

func formatCounts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := slices.Collect(maps.Keys(m))
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%q=%d", k, m[k])
	}
	return strings.Join(parts, ",")
}

func mib(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }

// parallel runs f(0..n-1) with at most workers at once, and returns the first error (the others then
// stop early).
func parallel(ctx context.Context, n, workers int, f func(ctx context.Context, i int) error) error {
	g, ctx := errgroup.WithContext(ctx)
	next := make(chan int)
	for range min(workers, max(n, 1)) {
		g.Go(func() error {
			for i := range next {
				if err := f(ctx, i); err != nil {
					return err
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(next)
		for i := range n {
			select {
			case next <- i:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	return g.Wait()
}

// jsonMergePatchAnnotation is a JSON merge patch that sets one annotation.
func jsonMergePatchAnnotation(key, value string) ([]byte, error) {
	return json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{key: value}}})
}

// countLines counts the lines of a file that contain s.
func countLines(path, s string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	return strings.Count(string(data), s)
}

// requestTotal sums the registry's per-method counts.
func requestTotal(counts map[string]int) int {
	n := 0
	for k, v := range counts {
		if !strings.Contains(k, " ") {
			n += v
		}
	}
	return n
}
