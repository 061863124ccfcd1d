package sigstore

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// Media types of the layers cosign writes (see test/cosign/cosign_test.go for the whole layout).
const (
	// MediaTypeSimpleSigning is a legacy .sig layer: a simple-signing payload.
	MediaTypeSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
	// MediaTypeDSSE is a legacy .att layer: a DSSE envelope.
	MediaTypeDSSE = "application/vnd.dsse.envelope.v1+json"
	// MediaTypeBundle is a Sigstore bundle v0.3: the artifact type, config artifact type and layer of a
	// bundle referrer, and the bundle's own media type.
	MediaTypeBundle = "application/vnd.dev.sigstore.bundle.v0.3+json"
)

// Annotations of legacy layers.
const (
	// AnnotationSignature is the base64 signature of a .sig layer; empty on a .att layer.
	AnnotationSignature = "dev.cosignproject.cosign/signature"
	// AnnotationCertificate is the PEM leaf certificate of a keyless signature.
	AnnotationCertificate = "dev.sigstore.cosign/certificate"
	// AnnotationChain is the PEM intermediate and root of a keyless signature.
	AnnotationChain = "dev.sigstore.cosign/chain"
	// AnnotationBundle is the Rekor SET and entry (CosignBundle JSON).
	AnnotationBundle = "dev.sigstore.cosign/bundle"
	// AnnotationTimestamp is {"SignedRFC3161Timestamp": base64 DER}.
	AnnotationTimestamp = "dev.sigstore.cosign/rfc3161timestamp"
	// AnnotationPredicate is the predicate type of a .att layer.
	AnnotationPredicate = "predicateType"
)

// Annotations of bundle referrer manifests.
const (
	// AnnotationBundleContent is "dsse-envelope".
	AnnotationBundleContent = "dev.sigstore.bundle.content"
	// AnnotationBundlePredicate is the statement's predicate type.
	AnnotationBundlePredicate = "dev.sigstore.bundle.predicateType"
	// AnnotationCreated is when the referrer was written (RFC 3339, seconds, UTC).
	AnnotationCreated = "org.opencontainers.image.created"
)

const (
	// CosignSignPredicate is the predicate type of cosign v3's image signatures in the bundle format.
	CosignSignPredicate = "https://sigstore.dev/cosign/sign/v1"
	// InTotoPayloadType is the DSSE payload type of in-toto statements.
	InTotoPayloadType = "application/vnd.in-toto+json"

	simpleSigningType = "cosign container image signature"
	statementV1       = "https://in-toto.io/Statement/v1"
	statementV01      = "https://in-toto.io/Statement/v0.1"
)

// Tlog says whether a signature is logged in the transparency log.
type Tlog int

const (
	// TlogAuto logs keyless signatures and not key signatures (as test/cosign signs with a key and
	// --tlog-upload=false).
	TlogAuto Tlog = iota
	// TlogOn logs the signature (a KeySigner then needs a Stack).
	TlogOn
	// TlogOff does not log it.
	TlogOff
)

// SignOptions are the choices of one signature or attestation.
type SignOptions struct {
	// Tlog says whether the signature is logged (default: keyless only).
	Tlog Tlog
	// EntryKind is the log entry kind of a DSSE envelope: KindDSSE (default) or KindIntoto.
	EntryKind string
	// IntegratedTime is when the log integrated the entry (default: the Writer's clock); it also dates the
	// certificate of a KeylessSigner without NotBefore/NotAfter, and the timestamp.
	IntegratedTime time.Time
	// LogIndex is the entry's index (default: the log's next).
	LogIndex int64
	// Timestamp asks the stack's TSA for an RFC 3161 timestamp, dated TimestampTime (default: the
	// integrated time, or now).
	Timestamp     bool
	TimestampTime time.Time
	// TimestampEnvelope timestamps a legacy attestation's whole envelope (the layer) instead of its
	// signature, as cosign v2 did; cosign v3.1.3 and sigstore-go timestamp the signature.
	TimestampEnvelope bool
	// SignatureRepository is where the signature goes (cosign's COSIGN_REPOSITORY), e.g.
	// "127.0.0.1:5000/signatures" or a path in the Writer's registry; default: the image's repository.
	SignatureRepository string
	// EmptyChain writes the legacy dev.sigstore.cosign/chain annotation empty, as cosign v3.1.3 does for
	// keyless signatures (its bundle holds only the leaf); by default it holds the intermediate and the
	// root, as cosign v2 wrote it.
	EmptyChain bool
	// Annotations are signed with an image signature (cosign sign -a): the "optional" map of the legacy
	// payload, the subject annotations of the bundle's statement.
	Annotations map[string]string

	// Hooks that make a signature invalid, for tests.

	// Digest, if set, is the digest the signature is about ("sha256:..."), instead of the image's: the
	// signature is stored with the image but bound to something else.
	Digest string
	// Payload, if set, receives the signed payload (simple-signing JSON or in-toto statement) and returns
	// what is stored instead, with the original signature.
	Payload func([]byte) []byte
	// TamperSET flips a bit of the log's signed entry timestamp.
	TamperSET bool
}

// Result describes what was written.
type Result struct {
	// Manifest is the manifest that holds the signature: the .sig or .att manifest, or the referrer.
	Manifest name.Digest
	// Payload is what was signed: the simple-signing JSON or the in-toto statement.
	Payload []byte
	// Signature is the signature over Payload (legacy) or over its DSSE PAE.
	Signature []byte
	// Certificate is the keyless certificate; nil for a key.
	Certificate *x509.Certificate
	// LogEntry is the transparency log entry, if logged (with the flipped SET of TamperSET).
	LogEntry *LogEntry
	// Timestamp is the RFC 3161 timestamp, if asked for.
	Timestamp []byte
	// Bundle is the Sigstore bundle JSON of a bundle-format signature.
	Bundle []byte
}

// Writer pushes images, signatures and attestations to an OCI registry. It is safe for concurrent use;
// writes that update the same tag are serialized.
type Writer struct {
	// Registry is the host[:port] that repository paths are relative to ("127.0.0.1:5000"); repositories
	// that start with it, or when it is empty, are taken as they are.
	Registry string
	// Insecure allows plain HTTP for any registry (go-containerregistry already uses it for localhost,
	// loopback and private addresses).
	Insecure bool
	// Options are passed to every go-containerregistry call (transport, authentication).
	Options []remote.Option
	// Clock dates what is not dated by the options (default time.Now).
	Clock func() time.Time

	locks sync.Map // string -> *sync.Mutex
}

// Repository returns the repository named repo: a path in Registry ("app") or a full name.
func (w *Writer) Repository(repo string) (name.Repository, error) {
	if w.Registry != "" && !strings.HasPrefix(repo, w.Registry+"/") {
		repo = w.Registry + "/" + repo
	}
	var opts []name.Option
	if w.Insecure {
		opts = append(opts, name.Insecure)
	}
	r, err := name.NewRepository(repo, opts...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("repository %q: %w", repo, err)
	}
	return r, nil
}

// PushRandomImage pushes a small random image (one 256-byte layer, Docker media types) to ref, a
// repository of Repository optionally with a tag (":latest" if none), and returns its digest reference.
func (w *Writer) PushRandomImage(ctx context.Context, ref string) (name.Digest, error) {
	repo, tag := ref, "latest"
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		repo, tag = ref[:i], ref[i+1:]
	}
	r, err := w.Repository(repo)
	if err != nil {
		return name.Digest{}, err
	}
	img, err := random.Image(256, 1)
	if err != nil {
		return name.Digest{}, err
	}
	if err := remote.Write(r.Tag(tag), img, w.options(ctx)...); err != nil {
		return name.Digest{}, fmt.Errorf("pushing %s: %w", r.Tag(tag), err)
	}
	d, err := img.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	return r.Digest(d.String()), nil
}

// PushRandomIndex pushes a multi-arch image to ref (as PushRandomImage): an OCI image index of one small
// random image per platform ("linux/amd64", "linux/arm64"...), and returns the index's digest and the
// platform manifests' digests, in the order of platforms.
func (w *Writer) PushRandomIndex(ctx context.Context, ref string, platforms ...string) (name.Digest, []name.Digest, error) {
	repo, tag := ref, "latest"
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		repo, tag = ref[:i], ref[i+1:]
	}
	r, err := w.Repository(repo)
	if err != nil {
		return name.Digest{}, nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var digests []name.Digest
	for _, p := range platforms {
		platform, err := v1.ParsePlatform(p)
		if err != nil {
			return name.Digest{}, nil, err
		}
		img, err := random.Image(256, 1)
		if err != nil {
			return name.Digest{}, nil, err
		}
		d, err := img.Digest()
		if err != nil {
			return name.Digest{}, nil, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: platform}})
		digests = append(digests, r.Digest(d.String()))
	}
	if err := remote.WriteIndex(r.Tag(tag), idx, w.options(ctx)...); err != nil {
		return name.Digest{}, nil, fmt.Errorf("pushing %s: %w", r.Tag(tag), err)
	}
	d, err := idx.Digest()
	if err != nil {
		return name.Digest{}, nil, err
	}
	return r.Digest(d.String()), digests, nil
}

// SignLegacy signs img as `cosign sign --new-bundle-format=false`: it appends a simple-signing layer to
// the sha256-<hex>.sig manifest of the signature repository. Unlike cosign, it always appends: cosign
// skips a signature when a layer with the same payload already verifies with the same key.
func (w *Writer) SignLegacy(ctx context.Context, img name.Digest, s Signer, opts SignOptions) (*Result, error) {
	job, err := w.start(img, s, opts)
	if err != nil {
		return nil, err
	}
	payload, err := json.Marshal(simpleSigning(img.Context().Name(), job.digest, opts.Annotations))
	if err != nil {
		return nil, err
	}
	res := &Result{Payload: payload, Certificate: job.m.cert}
	if res.Signature, err = job.m.sign(payload); err != nil {
		return nil, err
	}
	if err := job.logAndStamp(res, EntryRequest{Kind: KindHashedRekord, Artifact: payload, Signature: res.Signature}, res.Signature); err != nil {
		return nil, err
	}
	ann := map[string]string{AnnotationSignature: base64.StdEncoding.EncodeToString(res.Signature)}
	if err := job.annotate(ann, res); err != nil {
		return nil, err
	}
	res.Manifest, err = w.appendLayer(ctx, job.sigRepo.Tag(tagPrefix(img)+".sig"), static.NewLayer(job.tamper(payload), MediaTypeSimpleSigning), ann)
	return res, err
}

// AttestLegacy attests img as `cosign attest --new-bundle-format=false --type <predicateType>`: it
// appends a DSSE envelope layer to the sha256-<hex>.att manifest of the signature repository. predicate is
// JSON ([]byte, json.RawMessage) or a value to marshal. As cosign v3.1.3, which builds a bundle with
// sigstore-go and unpacks it into annotations, the layer is the envelope marshaled without keyid, the log
// entry is a dsse entry and the timestamp is over the DSSE signature (see SignOptions.TimestampEnvelope).
func (w *Writer) AttestLegacy(ctx context.Context, img name.Digest, s Signer, predicateType string, predicate any, opts SignOptions) (*Result, error) {
	job, err := w.start(img, s, opts)
	if err != nil {
		return nil, err
	}
	statement, err := attestStatement(img.Context().Name(), job.digest, predicateType, predicate)
	if err != nil {
		return nil, err
	}
	res := &Result{Payload: statement, Certificate: job.m.cert}
	envelope, err := job.envelope(res)
	if err != nil {
		return nil, err
	}
	signed, err := json.Marshal(envelope)
	if err != nil {
		return nil, err
	}
	stamped := res.Signature
	if opts.TimestampEnvelope {
		stamped = signed
	}
	if err := job.logAndStamp(res, EntryRequest{Kind: job.entryKind(), Artifact: signed}, stamped); err != nil {
		return nil, err
	}
	ann := map[string]string{AnnotationSignature: "", AnnotationPredicate: predicateType}
	if err := job.annotate(ann, res); err != nil {
		return nil, err
	}
	stored := signed
	if opts.Payload != nil {
		envelope.Payload = job.tamper(statement)
		if stored, err = json.Marshal(envelope); err != nil {
			return nil, err
		}
	}
	res.Manifest, err = w.appendLayer(ctx, job.sigRepo.Tag(tagPrefix(img)+".att"), static.NewLayer(stored, MediaTypeDSSE), ann)
	return res, err
}

// SignBundle signs img as cosign v3's `cosign sign`: a Sigstore bundle v0.3 of a DSSE in-toto statement
// (predicate type CosignSignPredicate) pushed as an OCI 1.1 referrer of img.
func (w *Writer) SignBundle(ctx context.Context, img name.Digest, s Signer, opts SignOptions) (*Result, error) {
	job, err := w.start(img, s, opts)
	if err != nil {
		return nil, err
	}
	statement, err := signStatement(job.digest, opts.Annotations)
	if err != nil {
		return nil, err
	}
	return w.pushBundle(ctx, job, statement, CosignSignPredicate)
}

// AttestBundle attests img as cosign v3's `cosign attest --type <predicateType>`: a Sigstore bundle v0.3
// of a DSSE in-toto statement pushed as an OCI 1.1 referrer of img. predicate is as for AttestLegacy.
func (w *Writer) AttestBundle(ctx context.Context, img name.Digest, s Signer, predicateType string, predicate any, opts SignOptions) (*Result, error) {
	job, err := w.start(img, s, opts)
	if err != nil {
		return nil, err
	}
	statement, err := attestStatement(img.Context().Name(), job.digest, predicateType, predicate)
	if err != nil {
		return nil, err
	}
	return w.pushBundle(ctx, job, statement, predicateType)
}

// DeleteSignatures removes every signature and attestation of img from the signature repository
// (sigRepo, or the image's repository if empty): the .sig and .att tags, the referrers and the referrers
// fallback tag.
func (w *Writer) DeleteSignatures(ctx context.Context, img name.Digest, sigRepo string) error {
	repo := img.Context()
	if sigRepo != "" {
		var err error
		if repo, err = w.Repository(sigRepo); err != nil {
			return err
		}
	}
	prefix := tagPrefix(img)
	for _, tag := range []string{prefix + ".sig", prefix + ".att"} {
		if err := w.delete(ctx, repo.Tag(tag)); err != nil {
			return err
		}
	}
	idx, err := remote.Referrers(repo.Digest(img.DigestStr()), w.options(ctx)...)
	if err != nil {
		return fmt.Errorf("listing the referrers of %s: %w", img, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, d := range im.Manifests {
		if err := w.delete(ctx, repo.Digest(d.Digest.String())); err != nil {
			return err
		}
	}
	return w.delete(ctx, repo.Tag(prefix))
}

// job is one signature in the making.
type job struct {
	opts    SignOptions
	m       *material
	sigRepo name.Repository
	img     name.Digest
	digest  string // what the signature is about
	logged  bool
	at      time.Time // the signing time
}

func (w *Writer) start(img name.Digest, s Signer, opts SignOptions) (*job, error) {
	j := &job{opts: opts, img: img, sigRepo: img.Context(), digest: img.DigestStr(), at: opts.IntegratedTime}
	if opts.Digest != "" {
		j.digest = opts.Digest
	}
	if opts.SignatureRepository != "" {
		var err error
		if j.sigRepo, err = w.Repository(opts.SignatureRepository); err != nil {
			return nil, err
		}
	}
	if j.at.IsZero() {
		j.at = w.now()
	}
	var err error
	if j.m, err = s.material(j.at); err != nil {
		return nil, err
	}
	j.logged = opts.Tlog == TlogOn || (opts.Tlog == TlogAuto && j.m.cert != nil)
	if (j.logged || opts.Timestamp) && j.m.stack == nil {
		return nil, errors.New("a transparency log entry or a timestamp needs a signer with a Stack")
	}
	return j, nil
}

func (j *job) entryKind() string {
	if j.opts.EntryKind != "" {
		return j.opts.EntryKind
	}
	return KindDSSE
}

// envelope signs res.Payload as a DSSE envelope of an in-toto statement. Marshaled with encoding/json it
// is what cosign v3.1.3 stores in a legacy .att layer and what sigstore-go sends to Rekor:
// {"payload":…,"payloadType":…,"signatures":[{"sig":…}]}.
func (j *job) envelope(res *Result) (*protodsse.Envelope, error) {
	sig, err := j.m.sign(dsse.PAE(InTotoPayloadType, res.Payload))
	if err != nil {
		return nil, err
	}
	res.Signature = sig
	return &protodsse.Envelope{
		Payload:     res.Payload,
		PayloadType: InTotoPayloadType,
		Signatures:  []*protodsse.Signature{{Sig: sig}},
	}, nil
}

// logAndStamp makes the log entry and the timestamp (over stamped) that the options ask for.
func (j *job) logAndStamp(res *Result, req EntryRequest, stamped []byte) error {
	var err error
	if j.logged {
		req.Verifier, req.IntegratedTime, req.LogIndex = j.m.verifierPEM, j.at, j.opts.LogIndex
		if res.LogEntry, err = j.m.stack.LogEntry(req); err != nil {
			return err
		}
		if j.opts.TamperSET {
			set := append([]byte(nil), res.LogEntry.SET...)
			set[len(set)-1] ^= 1
			res.LogEntry.SET = set
		}
	}
	if j.opts.Timestamp {
		at := j.opts.TimestampTime
		if at.IsZero() {
			at = j.at
		}
		if res.Timestamp, err = j.m.stack.Timestamp(stamped, at); err != nil {
			return err
		}
	}
	return nil
}

// annotate adds the certificate, chain, Rekor bundle and timestamp annotations of a legacy layer.
func (j *job) annotate(ann map[string]string, res *Result) error {
	if j.m.cert != nil {
		ann[AnnotationCertificate] = string(certificatePEM(j.m.cert))
		ann[AnnotationChain] = ""
		if !j.opts.EmptyChain {
			ann[AnnotationChain] = string(j.m.stack.ChainPEM())
		}
	}
	if res.LogEntry != nil {
		b, err := res.LogEntry.CosignBundle()
		if err != nil {
			return err
		}
		ann[AnnotationBundle] = string(b)
	}
	if res.Timestamp != nil {
		b, err := json.Marshal(struct {
			SignedRFC3161Timestamp []byte `json:"SignedRFC3161Timestamp"`
		}{res.Timestamp})
		if err != nil {
			return err
		}
		ann[AnnotationTimestamp] = string(b)
	}
	return nil
}

// tamper applies the Payload hook.
func (j *job) tamper(payload []byte) []byte {
	if j.opts.Payload == nil {
		return payload
	}
	return j.opts.Payload(payload)
}

func (w *Writer) pushBundle(ctx context.Context, j *job, statement []byte, predicateType string) (*Result, error) {
	res := &Result{Payload: statement, Certificate: j.m.cert}
	envelope, err := j.envelope(res)
	if err != nil {
		return nil, err
	}
	signed, err := json.Marshal(envelope)
	if err != nil {
		return nil, err
	}
	if err := j.logAndStamp(res, EntryRequest{Kind: j.entryKind(), Artifact: signed}, res.Signature); err != nil {
		return nil, err
	}
	envelope.Payload = j.tamper(res.Payload)
	if res.Bundle, err = j.bundle(res, envelope); err != nil {
		return nil, err
	}
	if res.Manifest, err = w.PushBundleReferrer(ctx, j.img, j.sigRepo, res.Bundle, predicateType); err != nil {
		return nil, err
	}
	return res, nil
}

// PushBundleReferrer stores a Sigstore bundle (JSON) as cosign v3 does: an OCI 1.1 referrer of img in
// sigRepo, artifactType the bundle media type, with cosign's annotations. It returns the referrer.
func (w *Writer) PushBundleReferrer(ctx context.Context, img name.Digest, sigRepo name.Repository, bundleJSON []byte, predicateType string) (name.Digest, error) {
	subject, err := remote.Head(img, w.options(ctx)...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("reading the descriptor of %s: %w", img, err)
	}
	emptyConfig := static.NewLayer([]byte("{}"), types.OCIEmptyJSON)
	layer := static.NewLayer(bundleJSON, MediaTypeBundle)
	configDesc, err := descriptor(emptyConfig, MediaTypeBundle)
	if err != nil {
		return name.Digest{}, err
	}
	layerDesc, err := descriptor(layer, "")
	if err != nil {
		return name.Digest{}, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  MediaTypeBundle,
		Config:        configDesc,
		Layers:        []v1.Descriptor{layerDesc},
		Annotations: map[string]string{
			AnnotationBundleContent:   "dsse-envelope",
			AnnotationBundlePredicate: predicateType,
			AnnotationCreated:         w.now().UTC().Format(time.RFC3339),
		},
		Subject: &v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size},
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return name.Digest{}, err
	}
	for _, l := range []v1.Layer{emptyConfig, layer} {
		if err := remote.WriteLayer(sigRepo, l, w.options(ctx)...); err != nil {
			return name.Digest{}, fmt.Errorf("pushing a blob to %s: %w", sigRepo, err)
		}
	}
	sum := sha256.Sum256(raw)
	ref := sigRepo.Digest("sha256:" + hex.EncodeToString(sum[:]))
	// Without the referrers API, go-containerregistry updates the fallback tag: one writer at a time.
	unlock := w.lock(sigRepo.Tag(tagPrefix(img)).String())
	defer unlock()
	if err := remote.Put(ref, rawManifest{raw: raw, mediaType: types.OCIManifestSchema1}, w.options(ctx)...); err != nil {
		return name.Digest{}, fmt.Errorf("pushing the bundle referrer of %s: %w", img, err)
	}
	return ref, nil
}

// bundle is the Sigstore bundle v0.3 of a DSSE signature.
func (j *job) bundle(res *Result, envelope *protodsse.Envelope) ([]byte, error) {
	vm := &protobundle.VerificationMaterial{}
	if j.m.cert != nil {
		vm.Content = &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: j.m.cert.Raw}}
	} else {
		vm.Content = &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{Hint: j.m.keyHint}}
	}
	if res.LogEntry != nil {
		vm.TlogEntries = []*protorekor.TransparencyLogEntry{res.LogEntry.Proto()}
	}
	if res.Timestamp != nil {
		vm.TimestampVerificationData = &protobundle.TimestampVerificationData{
			Rfc3161Timestamps: []*protocommon.RFC3161SignedTimestamp{{SignedTimestamp: res.Timestamp}},
		}
	}
	pb := &protobundle.Bundle{
		MediaType:            MediaTypeBundle,
		VerificationMaterial: vm,
		Content:              &protobundle.Bundle_DsseEnvelope{DsseEnvelope: envelope},
	}
	return protojson.Marshal(pb)
}

// appendLayer adds a layer to the legacy signature manifest at tag, creating it if needed, as cosign does:
// an OCI manifest whose config is an OCI image config.
func (w *Writer) appendLayer(ctx context.Context, tag name.Tag, layer v1.Layer, annotations map[string]string) (name.Digest, error) {
	unlock := w.lock(tag.String())
	defer unlock()
	base, err := remote.Image(tag, w.options(ctx)...)
	if notFound(err) {
		base = mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	} else if err != nil {
		return name.Digest{}, fmt.Errorf("reading %s: %w", tag, err)
	}
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, Annotations: annotations, MediaType: mustMediaType(layer)})
	if err != nil {
		return name.Digest{}, err
	}
	if err := remote.Write(tag, img, w.options(ctx)...); err != nil {
		return name.Digest{}, fmt.Errorf("pushing %s: %w", tag, err)
	}
	d, err := img.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	return tag.Context().Digest(d.String()), nil
}

func (w *Writer) delete(ctx context.Context, ref name.Reference) error {
	if err := remote.Delete(ref, w.options(ctx)...); err != nil && !notFound(err) {
		return fmt.Errorf("deleting %s: %w", ref, err)
	}
	return nil
}

func (w *Writer) options(ctx context.Context) []remote.Option {
	return append(append([]remote.Option{}, w.Options...), remote.WithContext(ctx))
}

func (w *Writer) now() time.Time {
	if w.Clock != nil {
		return w.Clock()
	}
	return time.Now()
}

// lock serializes the read-modify-write of one tag.
func (w *Writer) lock(key string) func() {
	mu, _ := w.locks.LoadOrStore(key, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	return mu.(*sync.Mutex).Unlock
}

func notFound(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound
}

// tagPrefix is cosign's tag for img: "sha256-<hex>".
func tagPrefix(img name.Digest) string {
	return strings.Replace(img.DigestStr(), ":", "-", 1)
}

func descriptor(l v1.Layer, artifactType string) (v1.Descriptor, error) {
	d, err := l.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	size, err := l.Size()
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mustMediaType(l), Digest: d, Size: size, ArtifactType: artifactType}, nil
}

func mustMediaType(l v1.Layer) types.MediaType {
	mt, _ := l.MediaType() // static layers always have one
	return mt
}

// rawManifest is a manifest pushed as it is.
type rawManifest struct {
	raw       []byte
	mediaType types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mediaType, nil }

// simpleSigningPayload is cosign's legacy signed payload; the field order is cosign's.
type simpleSigningPayload struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
	Optional map[string]string `json:"optional"`
}

func simpleSigning(repo, digest string, annotations map[string]string) simpleSigningPayload {
	var p simpleSigningPayload
	p.Critical.Identity.DockerReference = repo
	p.Critical.Image.DockerManifestDigest = digest
	p.Critical.Type = simpleSigningType
	if len(annotations) > 0 {
		p.Optional = annotations
	}
	return p
}

type statement struct {
	Type          string          `json:"_type"`
	Subject       []subject       `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate"`
}

type subject struct {
	Name        string            `json:"name,omitempty"`
	Digest      map[string]string `json:"digest"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// signStatement is the statement of cosign v3's bundle signatures: no subject name, the annotations
// ({} if none) on the subject, an empty predicate.
func signStatement(digest string, annotations map[string]string) ([]byte, error) {
	hexDigest, err := sha256Hex(digest)
	if err != nil {
		return nil, err
	}
	if annotations == nil {
		annotations = map[string]string{}
	}
	// "annotations": {} must be written even when empty, which omitempty would not do.
	type signSubject struct {
		Digest      map[string]string `json:"digest"`
		Annotations map[string]string `json:"annotations"`
	}
	return json.Marshal(struct {
		Type          string          `json:"_type"`
		Subject       []signSubject   `json:"subject"`
		PredicateType string          `json:"predicateType"`
		Predicate     json.RawMessage `json:"predicate"`
	}{statementV1, []signSubject{{Digest: map[string]string{"sha256": hexDigest}, Annotations: annotations}},
		CosignSignPredicate, json.RawMessage("{}")})
}

// attestStatement is the statement of cosign's attestations (both formats): in-toto v0.1, the image
// repository as subject name.
func attestStatement(repo, digest, predicateType string, predicate any) ([]byte, error) {
	hexDigest, err := sha256Hex(digest)
	if err != nil {
		return nil, err
	}
	var raw json.RawMessage
	switch p := predicate.(type) {
	case []byte:
		raw = p
	case json.RawMessage:
		raw = p
	default:
		if raw, err = json.Marshal(p); err != nil {
			return nil, fmt.Errorf("marshaling the predicate: %w", err)
		}
	}
	if !json.Valid(raw) {
		return nil, errors.New("the predicate is not JSON")
	}
	return json.Marshal(statement{Type: statementV01,
		Subject:       []subject{{Name: repo, Digest: map[string]string{"sha256": hexDigest}}},
		PredicateType: predicateType, Predicate: raw})
}

func sha256Hex(digest string) (string, error) {
	h, err := v1.NewHash(digest)
	if err != nil || h.Algorithm != "sha256" {
		return "", fmt.Errorf("%q is not a sha256 digest", digest)
	}
	return h.Hex, nil
}
