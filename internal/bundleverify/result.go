package bundleverify

import (
	"slices"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/verify"
)

// result gathers what sigstore-go verified with what the bundle records about its log entries.
func result(b *bundle.Bundle, res *verify.VerificationResult, keyID, trustRoot string) (*Result, error) {
	out := &Result{KeyID: keyID, TrustRoot: trustRoot}
	if res.Signature != nil && res.Signature.Certificate != nil {
		summary := *res.Signature.Certificate
		out.Certificate = &summary
		out.KeyID = ""
	}
	if res.Statement != nil {
		out.PredicateType = res.Statement.GetPredicateType()
	}
	entries, err := b.TlogEntries()
	if err != nil {
		return nil, notVerified("reading transparency log entries: %w", err)
	}
	for _, e := range entries {
		out.TlogEntries = append(out.TlogEntries, TlogEntry{LogIndex: e.LogIndex(), IntegratedTime: e.IntegratedTime(), RekorV2: e.IsRekorV2()})
	}
	for _, ts := range res.VerifiedTimestamps {
		out.VerifiedTimestamps = append(out.VerifiedTimestamps, Timestamp{Source: ts.Type, URI: ts.URI, Time: ts.Timestamp})
	}
	slices.SortStableFunc(out.VerifiedTimestamps, func(a, b Timestamp) int { return a.Time.Compare(b.Time) })
	return out, nil
}
