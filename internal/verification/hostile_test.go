package verification

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	. "github.com/onsi/gomega"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/policy"
	testregistry "github.com/sigwatch/sigwatch/test/registry"
	"github.com/sigwatch/sigwatch/test/sigstore"
)

// hostileBound is the most extra heap that 8 concurrent verifications against the hostile registry
// below may take: two verifications' worth of reads (the memory budget) and what parsing them costs.
const hostileBound = 96 << 20

// answer is what the hostile registry serves for one path.
type answer struct {
	body        []byte
	contentType string
	digest      string
	gzip        bool  // sent with Content-Encoding: gzip (body is the inflated content)
	size        int64 // Content-Length to claim on HEAD (default len(body))
}

// hostile serves crafted answers for exact paths over a real registry, which holds the images.
type hostile struct {
	mu      sync.Mutex
	answers map[string]answer // "METHOD path"
	gzipped map[string][]byte
	served  atomic.Int64 // bytes written
}

func (h *hostile) set(method, path string, a answer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if a.gzip {
		if _, ok := h.gzipped[path]; !ok {
			var b bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
			_, _ = zw.Write(a.body)
			_ = zw.Close()
			h.gzipped[path] = b.Bytes()
		}
	}
	h.answers[method+" "+path] = a
}

func (h *hostile) intercept(w http.ResponseWriter, r *http.Request) bool {
	h.mu.Lock()
	a, ok := h.answers[r.Method+" "+r.URL.Path]
	gz := h.gzipped[r.URL.Path]
	h.mu.Unlock()
	if !ok {
		return false
	}
	if a.contentType != "" {
		w.Header().Set("Content-Type", a.contentType)
	}
	if a.digest != "" {
		w.Header().Set("Docker-Content-Digest", a.digest)
	}
	body := a.body
	// A gzip bomb goes to whoever accepts gzip (as Go's transport does unless told otherwise), and to
	// whoever does not, too: a hostile registry does not care.
	if a.gzip {
		w.Header().Set("Content-Encoding", "gzip")
		body = gz
	}
	if r.Method == http.MethodHead {
		size := a.size
		if size == 0 {
			size = int64(len(a.body))
		}
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		return true
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	n, _ := w.Write(body)
	h.served.Add(int64(n))
	return true
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func manifestJSON(layers []map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha([]byte("{}")), "size": 2},
		"layers":        layers,
	})
	return b
}

const ociManifest = "application/vnd.oci.image.manifest.v1+json"

// serveTag makes repo's tag (cosign's sha256-<hex>.sig or .att) a manifest of layers, each served as
// content (gzip-encoded when bomb).
func (h *hostile) serveTag(repo, tag string, layerType string, content []byte, n int, bomb bool, annotations map[string]string) {
	layerDigest := sha(content)
	var layers []map[string]any
	for range n {
		layers = append(layers, map[string]any{"mediaType": layerType, "digest": layerDigest, "size": len(content), "annotations": annotations})
	}
	m := manifestJSON(layers)
	md := sha(m)
	h.set(http.MethodHead, "/v2/"+repo+"/manifests/"+tag, answer{body: m, contentType: ociManifest, digest: md})
	h.set(http.MethodGet, "/v2/"+repo+"/manifests/"+tag, answer{body: m, contentType: ociManifest, digest: md})
	h.set(http.MethodGet, "/v2/"+repo+"/manifests/"+md, answer{body: m, contentType: ociManifest, digest: md})
	h.set(http.MethodGet, "/v2/"+repo+"/blobs/"+layerDigest, answer{body: content, gzip: bomb})
}

// serveReferrers lists n bundle referrers for digest, each a manifest whose bundle layer is content
// (gzip-encoded when bomb); pad adds that many bytes of unsigned data to each listing descriptor.
func (h *hostile) serveReferrers(repo, digest string, content []byte, n int, bomb bool, pad int) {
	layerDigest := sha(content)
	var descs []map[string]any
	for i := range n {
		m := manifestJSON([]map[string]any{{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "digest": layerDigest, "size": len(content),
			"annotations": map[string]string{"n": strconv.Itoa(i)}}})
		md := sha(m)
		h.set(http.MethodGet, "/v2/"+repo+"/manifests/"+md, answer{body: m, contentType: ociManifest, digest: md})
		d := map[string]any{"mediaType": ociManifest, "digest": md, "size": len(m), "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json"}
		if pad > 0 {
			d["data"] = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{'x'}, pad))
			d["annotations"] = map[string]string{"junk": strings.Repeat("y", pad)}
		}
		descs = append(descs, d)
	}
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": descs})
	h.set(http.MethodGet, "/v2/"+repo+"/referrers/"+digest, answer{body: idx, contentType: "application/vnd.oci.image.index.v1+json"})
	h.set(http.MethodGet, "/v2/"+repo+"/blobs/"+layerDigest, answer{body: content, gzip: bomb})
}

// hugeStatement is a DSSE envelope (as cosign's .att layers) around an in-toto statement with many
// subjects, about digest among them, padded to about size bytes.
func hugeStatement(digest string, size int) []byte {
	var b strings.Builder
	b.WriteString(`{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://slsa.dev/provenance/v1","subject":[`)
	for i := 0; b.Len() < size*3/4; i++ {
		fmt.Fprintf(&b, `{"name":"s%d","digest":{"sha256":"%064x"}},`, i, i)
	}
	fmt.Fprintf(&b, `{"name":"app","digest":{"sha256":"%s"}}],"predicate":{}}`, strings.TrimPrefix(digest, "sha256:"))
	env, _ := json.Marshal(map[string]any{"payloadType": "application/vnd.in-toto+json", "payload": []byte(b.String()),
		"signatures": []map[string]string{{"sig": base64.StdEncoding.EncodeToString([]byte("not a signature"))}}})
	return env
}

// hugeBundle is a bundle JSON of about size bytes (a DSSE envelope around a huge statement).
func hugeBundle(digest string, size int) []byte {
	var env map[string]any
	_ = json.Unmarshal(hugeStatement(digest, size), &env)
	b, _ := json.Marshal(map[string]any{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
		"verificationMaterial": map[string]any{"publicKey": map[string]string{"hint": "aGludA=="}},
		"dsseEnvelope":         env})
	return b
}

// TestHostileRegistryMemory: eight concurrent verifications of images in a registry the attacker
// controls (gzip bombs, 64 layers claiming 16 MiB each, statements with a hundred thousand subjects,
// listings padded with unsigned data) take at most hostileBound of extra heap, and each verdict is
// InvalidSignature (Failed) or Unknown: never Verified, never a crash.
func TestHostileRegistryMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("moves a few hundred MiB over loopback")
	}
	g := NewWithT(t)
	reg := testregistry.Start(t, true)
	w := &sigstore.Writer{Registry: reg.Host}
	h := &hostile{answers: map[string]answer{}, gzipped: map[string][]byte{}}
	reg.Intercept(h.intercept)
	key, err := sigstore.NewKeySigner(nil)
	g.Expect(err).NotTo(HaveOccurred())
	pem := key.PublicKeyPEM()
	p := keyPolicy(t, "hostile", pem, sigwatchv1alpha1.TransparencyLogOptional,
		sigwatchv1alpha1.Attestation{Name: "provenance", PredicateType: "https://slsa.dev/provenance/v1"})

	const mib = 1 << 20
	var images []name.Digest
	for i, kind := range []string{"bombs", "layers", "statements", "listing", "bombs", "layers", "statements", "listing"} {
		repo := fmt.Sprintf("evil/%s-%d", kind, i)
		d, err := w.PushRandomImage(context.Background(), repo)
		g.Expect(err).NotTo(HaveOccurred())
		images = append(images, d)
		tagBase := strings.Replace(d.DigestStr(), ":", "-", 1)
		switch kind {
		case "bombs": // two bundle referrers, each a 15 MiB bundle in a few KiB of gzip
			h.serveReferrers(repo, d.DigestStr(), hugeBundle(d.DigestStr(), 15*mib), 2, true, 0)
		case "layers": // .sig and .att manifests of 64 layers claiming 16 MiB each (gzip bombs too)
			payload := append([]byte(`{"critical":{"identity":{"docker-reference":"x"},"image":{"docker-manifest-digest":"`+d.DigestStr()+`"},"type":"cosign container image signature"}}`), bytes.Repeat([]byte(" "), 16*mib-200)...)
			h.serveTag(repo, tagBase+".sig", "application/vnd.dev.cosign.simplesigning.v1+json", payload, 64, true,
				map[string]string{"dev.cosignproject.cosign/signature": "AAAA"})
			h.serveTag(repo, tagBase+".att", "application/vnd.dsse.envelope.v1+json", hugeStatement(d.DigestStr(), 16*mib-1024), 64, true, nil)
		case "statements": // one .att layer: a 15 MiB statement with ~150,000 subjects, sent as it is
			h.serveTag(repo, tagBase+".att", "application/vnd.dsse.envelope.v1+json", hugeStatement(d.DigestStr(), 15*mib), 1, false, nil)
		case "listing": // 64 referrers in a listing padded to almost 4 MiB with unsigned data and annotations
			h.serveReferrers(repo, d.DigestStr(), hugeBundle(d.DigestStr(), 64<<10), 64, false, 24<<10)
		}
	}

	eng, _ := newEngine(t, embeddedRoot(t), func(o *Options) { o.StateTTL = time.Minute; o.Timeout = 2 * time.Minute })
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	// As in the Deployment (GOMEMLIMIT), the garbage collector is told how much memory there is: what is
	// measured is then what verifications hold, not how late the collector ran.
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(int64(before.HeapAlloc) + hostileBound))
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	results := make([]*Result, len(images))
	var wg sync.WaitGroup
	for i, d := range images {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = eng.Verify(context.Background(), Request{Image: image(t, d), Policies: []*policy.Policy{p}})
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled
	extra := int64(peak.Load()) - int64(before.HeapAlloc)
	t.Logf("hostile registry: %d verifications, %.1f MiB served, extra peak heap %.1f MiB (bound %d MiB)",
		len(images), float64(h.served.Load())/mib, float64(extra)/mib, hostileBound/mib)
	for i, res := range results {
		pr := res.Policies[0]
		t.Logf("%s: %s %s: %.200s", images[i].Context().RepositoryStr(), pr.Result, pr.Reason, pr.Message)
		g.Expect(pr.Result).To(BeElementOf(sigwatchv1alpha1.PolicyFailed, sigwatchv1alpha1.PolicyUnknown), images[i].String())
		if pr.Result == sigwatchv1alpha1.PolicyFailed {
			g.Expect(pr.Reason).To(BeElementOf(sigwatchv1alpha1.InvalidSignatureReason, sigwatchv1alpha1.SignatureMissingReason,
				sigwatchv1alpha1.UntrustedSignerReason, sigwatchv1alpha1.AttestationMissingReason), pr.Message)
		}
	}
	g.Expect(extra).To(BeNumerically("<=", hostileBound))
}
