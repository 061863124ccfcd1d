package signatures

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
)

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	// cosignType is critical.type of cosign's simple-signing payloads.
	cosignType = "cosign container image signature"
)

func statementAbout(predicateType string, subjects ...Subject) *Statement {
	return &Statement{Type: "https://in-toto.io/Statement/v1", PredicateType: predicateType, Subject: subjects}
}

func sha256Subject(hexDigest string) Subject {
	return Subject{Name: "app", Digest: map[string]string{"sha256": hexDigest}}
}

func hexOf(d string) string { return strings.TrimPrefix(d, "sha256:") }

func TestCheckBinding(t *testing.T) {
	readErr := errors.New("layer is corrupt")
	cases := []struct {
		name string
		c    Candidate
		// wantErr is empty when the candidate is bound to digestA; otherwise a substring of the error,
		// which must also be ErrBinding unless wantIs says otherwise.
		wantErr string
		wantIs  error
	}{
		{name: "legacy payload naming the digest",
			c: Candidate{Payload: simpleSigningJSON(t, "registry.example/app", digestA, cosignType)}},
		{name: "legacy payload naming the digest from another repository (binding is by digest, as cosign's)",
			c: Candidate{Payload: simpleSigningJSON(t, "registry.example/other", digestA, cosignType)}},
		{name: "legacy payload naming another digest",
			c:       Candidate{Payload: simpleSigningJSON(t, "registry.example/app", digestB, cosignType)},
			wantErr: "the payload signs " + digestB},
		{name: "legacy payload naming the digest in upper-case hex (OCI digests are lower-case)",
			c:       Candidate{Payload: simpleSigningJSON(t, "registry.example/app", strings.ToUpper(digestA), cosignType)},
			wantErr: "the payload signs SHA256:AAAA"},
		{name: "legacy payload without docker-manifest-digest",
			c:       Candidate{Payload: []byte(`{"critical":{"identity":{"docker-reference":"registry.example/app"},"type":"cosign container image signature"}}`)},
			wantErr: "the payload signs nothing"},
		{name: "legacy payload that is not JSON",
			c:       Candidate{Payload: []byte("not json")},
			wantErr: "simple-signing payload does not parse"},
		{name: "legacy payload with the digest outside critical.image",
			c:       Candidate{Payload: []byte(`{"critical":{"type":"cosign container image signature"},"optional":{"docker-manifest-digest":"` + digestA + `"}}`)},
			wantErr: "the payload signs nothing"},
		{name: "an empty legacy payload",
			c:       Candidate{Payload: []byte{}},
			wantErr: "simple-signing payload does not parse"},

		{name: "signature statement about the digest",
			c: Candidate{Kind: KindSignature, Statement: statementAbout(CosignSignPredicate, sha256Subject(hexOf(digestA)))}},
		{name: "signature statement among whose subjects is the digest",
			c: Candidate{Kind: KindSignature, Statement: statementAbout(CosignSignPredicate, sha256Subject(hexOf(digestB)), sha256Subject(hexOf(digestA)))}},
		{name: "signature statement with the digest in upper-case hex",
			c: Candidate{Kind: KindSignature, Statement: statementAbout(CosignSignPredicate, sha256Subject(strings.ToUpper(hexOf(digestA))))}},
		{name: "signature statement of another predicate type",
			c:       Candidate{Kind: KindSignature, Statement: statementAbout(slsaPredicate, sha256Subject(hexOf(digestA)))},
			wantErr: `predicate type "` + slsaPredicate + `" is not a cosign signature`},
		{name: "signature statement without predicate type",
			c:       Candidate{Kind: KindSignature, Statement: statementAbout("", sha256Subject(hexOf(digestA)))},
			wantErr: `predicate type "" is not a cosign signature`},
		{name: "signature statement about another digest",
			c:       Candidate{Kind: KindSignature, Statement: statementAbout(CosignSignPredicate, sha256Subject(hexOf(digestB)))},
			wantErr: "the statement's subject is " + digestB},
		{name: "signature statement without subject",
			c:       Candidate{Kind: KindSignature, Statement: statementAbout(CosignSignPredicate)},
			wantErr: "the statement's subject is nothing"},
		{name: "signature statement whose subject has only a sha512 digest",
			c: Candidate{Kind: KindSignature, Statement: statementAbout(CosignSignPredicate,
				Subject{Name: "app", Digest: map[string]string{"sha512": hexOf(digestA) + hexOf(digestA)}})},
			wantErr: "the statement's subject is nothing"},
		{name: "signature statement whose sha256 value carries the algorithm prefix",
			c:       Candidate{Kind: KindSignature, Statement: statementAbout(CosignSignPredicate, sha256Subject(digestA))},
			wantErr: "the statement's subject is sha256:" + digestA},

		{name: "attestation about the digest, any predicate type",
			c: Candidate{Kind: KindAttestation, Statement: statementAbout(slsaPredicate, sha256Subject(hexOf(digestA)))}},
		{name: "attestation about another digest",
			c:       Candidate{Kind: KindAttestation, Statement: statementAbout(slsaPredicate, sha256Subject(hexOf(digestB)))},
			wantErr: "the statement's subject is " + digestB},
		{name: "attestation without subject",
			c:       Candidate{Kind: KindAttestation, Statement: statementAbout(slsaPredicate)},
			wantErr: "the statement's subject is nothing"},

		{name: "message signature bundle: neither payload nor statement",
			c:       Candidate{Kind: KindSignature, Bundle: messageSignatureBundle(t)},
			wantErr: "neither a payload nor a statement"},
		{name: "candidate that could not be read",
			c:       Candidate{Err: readErr, Payload: simpleSigningJSON(t, "registry.example/app", digestA, cosignType)},
			wantErr: readErr.Error(), wantIs: readErr},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := tc.c.CheckBinding(digestA)
			if tc.wantErr == "" {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
			if tc.wantIs != nil {
				g.Expect(err).To(MatchError(tc.wantIs))
				g.Expect(errors.Is(err, ErrBinding)).To(BeFalse(), "a read failure is not a binding failure")
			} else {
				g.Expect(errors.Is(err, ErrBinding)).To(BeTrue(), "%v", err)
			}
		})
	}
}

// TestCheckBindingRejectsPayloadOfAnotherType: cosign (sigstore/sigstore payload.Cosign) refuses a
// simple-signing payload whose critical.type is not "cosign container image signature".
func TestCheckBindingRejectsPayloadOfAnotherType(t *testing.T) {
	for _, typ := range []string{"", "atomic container signature", "something else"} {
		t.Run(fmt.Sprintf("%q", typ), func(t *testing.T) {
			c := Candidate{Payload: simpleSigningJSON(t, "registry.example/app", digestA, typ)}
			NewWithT(t).Expect(c.CheckBinding(digestA)).To(MatchError(ErrBinding))
		})
	}
}

// TestCheckBindingRejectsStatementOfAnotherType: the in-toto processing model rejects a statement whose
// _type is not an in-toto Statement type.
func TestCheckBindingRejectsStatementOfAnotherType(t *testing.T) {
	for _, typ := range []string{"", "https://example.com/NotAStatement/v1"} {
		t.Run(fmt.Sprintf("%q", typ), func(t *testing.T) {
			st := statementAbout(CosignSignPredicate, sha256Subject(hexOf(digestA)))
			st.Type = typ
			c := Candidate{Kind: KindSignature, Statement: st}
			NewWithT(t).Expect(c.CheckBinding(digestA)).To(MatchError(ErrBinding))
		})
	}
}

func TestSubjectDigests(t *testing.T) {
	cases := []struct {
		name     string
		subjects []Subject
		want     []string
	}{
		{name: "no subject", want: nil},
		{name: "one sha256 subject", subjects: []Subject{sha256Subject(hexOf(digestA))}, want: []string{digestA}},
		{name: "upper-case hex is lowered", subjects: []Subject{sha256Subject(strings.ToUpper(hexOf(digestB)))}, want: []string{digestB}},
		{name: "order is kept", subjects: []Subject{sha256Subject(hexOf(digestB)), sha256Subject(hexOf(digestA))}, want: []string{digestB, digestA}},
		{name: "subjects without sha256 are left out",
			subjects: []Subject{{Name: "x", Digest: map[string]string{"sha512": "00"}}, {Name: "y"}, sha256Subject(hexOf(digestA)), sha256Subject("")},
			want:     []string{digestA}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := Statement{Subject: tc.subjects}
			NewWithT(t).Expect(st.SubjectDigests()).To(Equal(tc.want))
		})
	}
}

func TestStatementOf(t *testing.T) {
	stmt := statementJSON(t, slsaPredicate, digestA)
	cases := []struct {
		name    string
		mutate  func(*protobundle.Bundle)
		wantErr string
		check   func(g *WithT, st *Statement)
	}{
		{name: "in-toto statement", check: func(g *WithT, st *Statement) {
			g.Expect(st.PredicateType).To(Equal(slsaPredicate))
			g.Expect(st.SubjectDigests()).To(Equal([]string{digestA}))
			g.Expect(st.Predicate).To(BeNil(), "the predicate is read only when needed")
		}},
		{name: "message signature: no statement", mutate: toMessageSignature, check: func(g *WithT, st *Statement) {
			g.Expect(st).To(BeNil())
		}},
		{name: "DSSE payload type other than in-toto", mutate: func(b *protobundle.Bundle) {
			b.GetDsseEnvelope().PayloadType = "application/vnd.dev.cosign.simplesigning.v1+json"
		}, wantErr: `DSSE payload type "application/vnd.dev.cosign.simplesigning.v1+json" is not in-toto`},
		{name: "DSSE payload that is not JSON", mutate: func(b *protobundle.Bundle) {
			b.GetDsseEnvelope().Payload = []byte("not json")
		}, wantErr: "in-toto statement does not parse"},
		{name: "DSSE payload whose subject is not a list", mutate: func(b *protobundle.Bundle) {
			b.GetDsseEnvelope().Payload = []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":{"digest":{}}}`)
		}, wantErr: "in-toto statement does not parse"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			var b bundle.Bundle
			var mutate []func(*protobundle.Bundle)
			if tc.mutate != nil {
				mutate = append(mutate, tc.mutate)
			}
			g.Expect(b.UnmarshalJSON(bundleJSON(t, stmt, mutate...))).To(Succeed())
			st, err := statementOf(&b)
			if tc.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
				g.Expect(st).To(BeNil())
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			tc.check(g, st)
		})
	}
}

func toMessageSignature(b *protobundle.Bundle) {
	b.Content = &protobundle.Bundle_MessageSignature{MessageSignature: &protocommon.MessageSignature{
		MessageDigest: &protocommon.HashOutput{Algorithm: protocommon.HashAlgorithm_SHA2_256, Digest: make([]byte, 32)},
		Signature:     []byte("sig"),
	}}
}

func messageSignatureBundle(t *testing.T) *bundle.Bundle {
	t.Helper()
	var b bundle.Bundle
	if err := b.UnmarshalJSON(bundleJSON(t, nil, toMessageSignature)); err != nil {
		t.Fatal(err)
	}
	return &b
}
