package signatures

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	. "github.com/onsi/gomega"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	"github.com/sigstore/sigstore-go/pkg/bundle"

	"github.com/sigwatch/sigwatch/internal/imageref"
)

// memRegistry serves manifests and blobs from memory and records what is read.
type memRegistry struct {
	mu        sync.Mutex
	manifests map[string][]byte
	blobs     map[string][]byte
	reads     []string
}

func (m *memRegistry) Head(context.Context, name.Reference) (*v1.Descriptor, error) {
	return nil, fmt.Errorf("not used")
}

func (m *memRegistry) Manifest(_ context.Context, _ name.Repository, d v1.Hash, _ int64) ([]byte, types.MediaType, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads = append(m.reads, "manifest "+d.String())
	return m.manifests[d.String()], types.OCIManifestSchema1, nil
}

func (m *memRegistry) Blob(_ context.Context, _ name.Repository, d v1.Hash, _ int64) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads = append(m.reads, "blob "+d.String())
	return m.blobs[d.String()], nil
}

func (m *memRegistry) Referrers(context.Context, name.Repository, v1.Hash, string) ([]v1.Descriptor, error) {
	return nil, nil
}

func (m *memRegistry) blobReads() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, r := range m.reads {
		if strings.HasPrefix(r, "blob ") {
			n++
		}
	}
	return n
}

// layerManifest stores a manifest of the given layer sizes and returns its descriptor.
func (m *memRegistry) layerManifest(t *testing.T, mediaType string, sizes ...int64) v1.Descriptor {
	t.Helper()
	var layers []map[string]any
	for i, size := range sizes {
		layers = append(layers, map[string]any{"mediaType": mediaType, "size": size,
			"digest": fmt.Sprintf("sha256:%064x", i+1)})
	}
	b := must[[]byte](t)(json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": string(types.OCIManifestSchema1),
		"config": map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "size": 2, "digest": sha256Hash([]byte("{}")).String()},
		"layers": layers}))
	d := sha256Hash(b)
	m.manifests[d.String()] = b
	return v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: d, Size: int64(len(b))}
}

// TestFetchLimitsBeforeReading: every limit on what a fetch reads is applied to what the manifests say,
// before a layer is read, and each refusal says which limit.
func TestFetchLimitsBeforeReading(t *testing.T) {
	repo := must[name.Repository](t)(name.NewRepository("registry.example/app"))
	where := Where{Image: imageref.Image{Repository: "registry.example/app", Digest: digestA}}
	const mib = 1 << 20
	for _, tc := range []struct {
		name string
		// state builds the State from the registry's manifests.
		state  func(m *memRegistry) *State
		budget *Budget
		// wantErr is the fetch's error; wantCandErr a candidate's.
		wantErr, wantCandErr string
	}{
		{name: "a referrer manifest larger than any bundle's", state: func(m *memRegistry) *State {
			return &State{Where: where, Referrers: []Located{{Repo: repo, Descriptor: v1.Descriptor{
				Digest: sha256Hash([]byte("big")), Size: maxReferrerManifest + 1, ArtifactType: MediaTypeBundleV03}}}}
		}, wantCandErr: fmt.Sprintf("is a manifest of %d bytes, more than the %d examined", maxReferrerManifest+1, maxReferrerManifest)},
		{name: "a .sig manifest larger than the cap", state: func(m *memRegistry) *State {
			return &State{Where: where, SigTag: &Located{Repo: repo, Descriptor: v1.Descriptor{Digest: sha256Hash([]byte("sig")), Size: 2 * mib}}}
		}, wantCandErr: fmt.Sprintf("is %d bytes, more than the %d examined", 2*mib, maxTagManifest)},
		{name: "a layer without a size", state: func(m *memRegistry) *State {
			return &State{Where: where, SigTag: &Located{Repo: repo, Descriptor: m.layerManifest(t, MediaTypeSimpleSigning, 0)}}
		}, wantCandErr: "has no size in its manifest"},
		{name: "signature layers over the signature cap", state: func(m *memRegistry) *State {
			return &State{Where: where, SigTag: &Located{Repo: repo, Descriptor: m.layerManifest(t, MediaTypeSimpleSigning, DefaultMaxSignatureSize+1)}}
		}, wantCandErr: fmt.Sprintf("more than the %d examined", DefaultMaxSignatureSize)},
		{name: "attestations over the per-image total", state: func(m *memRegistry) *State {
			return &State{Where: where, Attestations: true, AttTag: &Located{Repo: repo, Descriptor: m.layerManifest(t, MediaTypeDSSE, 12*mib, 12*mib, 12*mib)}}
		}, wantErr: "come to 37748736 bytes, more than the 33554432 read for one image"},
		{name: "more than the whole budget", state: func(m *memRegistry) *State {
			return &State{Where: where, Attestations: true, AttTag: &Located{Repo: repo, Descriptor: m.layerManifest(t, MediaTypeDSSE, 2*mib)}}
		}, budget: NewBudget(mib), wantErr: "more than the 1048576 bytes held by all verifications at once"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			m := &memRegistry{manifests: map[string][]byte{}, blobs: map[string][]byte{}}
			d := &Discoverer{Registry: m, Budget: tc.budget}
			cands, err := d.Fetch(context.Background(), tc.state(m))
			g.Expect(m.blobReads()).To(BeZero(), "refused before any layer is read")
			if tc.wantErr != "" {
				g.Expect(err).To(MatchError(ErrTooLarge))
				g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cands).To(HaveLen(1))
			g.Expect(cands[0].Err).To(MatchError(ContainSubstring(tc.wantCandErr)))
			g.Expect(cands[0].Unreadable).To(BeFalse(), "settled from what the manifests say: a bad signature, not a glitch")
		})
	}
}

// TestBudgetWaitsAndGivesBack: a fetch waits for its share of a full budget, gives up at its deadline
// (undecided, not "too large"), and gets it once the holder gives it back.
func TestBudgetWaitsAndGivesBack(t *testing.T) {
	g := NewWithT(t)
	b := NewBudget(10)
	release, err := b.reserve(context.Background(), 8)
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = b.reserve(ctx, 5)
	g.Expect(err).To(MatchError(context.DeadlineExceeded))
	g.Expect(err).NotTo(MatchError(ErrTooLarge))
	release()
	release() // once only
	r2, err := b.reserve(context.Background(), 10)
	g.Expect(err).NotTo(HaveOccurred(), "all of it is free again")
	r2()
}

// TestStatementSubjectsAreCapped: a statement's subjects are read one at a time up to MaxSubjects; more
// is refused, and null or a non-list is not a list of subjects.
func TestStatementSubjectsAreCapped(t *testing.T) {
	statement := func(subjects string) *bundle.Bundle {
		payload := `{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://slsa.dev/provenance/v1","subject":` + subjects + `}`
		return &bundle.Bundle{Bundle: &protobundle.Bundle{Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
			PayloadType: "application/vnd.in-toto+json", Payload: []byte(payload)}}}}
	}
	many := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf(`{"name":"s%d","digest":{"sha256":"%064x"}}`, i, i)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	g := NewWithT(t)
	st, err := statementOf(statement(many(MaxSubjects)))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(st.Subject).To(HaveLen(MaxSubjects))
	_, err = statementOf(statement(many(MaxSubjects + 1)))
	g.Expect(err).To(MatchError(ContainSubstring(fmt.Sprintf("more than %d subjects", MaxSubjects))))
	st, err = statementOf(statement("null"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(st.Subject).To(BeEmpty())
	_, err = statementOf(statement(`"app"`))
	g.Expect(err).To(MatchError(ContainSubstring("in-toto statement does not parse")))
}
