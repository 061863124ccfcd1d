package verification

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/imageref"
	"github.com/sigwatch/sigwatch/internal/policy"
	"github.com/sigwatch/sigwatch/internal/registry"
)

// MaxIndexes bounds the image indexes one request may name (Request.Indexes).
const MaxIndexes = 4

// maxIndexManifests bounds the manifests an index may list for sigwatch to look for the platform digest
// in it: OCI images rarely list more than a dozen platforms (and their attestation manifests).
const maxIndexManifests = 256

// Multi-arch images: the runtime may report the digest of the platform manifest it pulled rather than the
// index's (containerd reports the digest the image was pulled by; others the platform's). When that digest
// has no signature of its own and a pod's spec pins an image index by digest, the index's signatures
// count for it, provided the index (read by digest, so hash-checked) lists the platform digest. A tag is
// never resolved: an index named only by tag is not looked at.

// verifyWithIndexes is Verify for a request that names indexes: the digest's own verdict, except for the
// policies under which it has no signature at all. For those, every named index that lists the digest is
// judged, and the one that satisfies the most of them gives their verdict. An index that cannot be read
// (the registry fails, or answers with bytes that are not the digest's, or says it does not exist although
// a pod runs from it) leaves those policies Unknown unless another index satisfies them all.
func (e *Engine) verifyWithIndexes(ctx context.Context, req Request) *Result {
	res := e.verifyDigest(ctx, req)
	if res.Deferred != "" {
		return res
	}
	var missing []*policy.Policy
	at := map[string]int{} // policy name -> index in res.Policies
	for i, pr := range res.Policies {
		if pr.Reason == sigwatchv1alpha1.SignatureMissingReason {
			at[pr.Policy] = i
			for _, p := range req.Policies {
				if p.Name == pr.Policy {
					missing = append(missing, p)
				}
			}
		}
	}
	if len(missing) == 0 {
		return res
	}
	// The index reads have the deadline of one verification, as the digest's own reads do.
	ictx, cancel := context.WithTimeout(ctx, e.hosts.timeout(hostOf(req.Image.Repository)))
	defer cancel()
	var notes []string
	var best *Result
	var bestIndex, unreadable string
	var unreadableErr error
	bestScore := -1
	for _, idx := range firstIndexes(req) {
		listed, err := e.indexLists(ictx, req, idx)
		switch {
		case err != nil && indexUnreadable(ictx, err):
			if unreadableErr == nil {
				unreadable, unreadableErr = idx, err
			}
			continue
		case err != nil:
			notes = append(notes, fmt.Sprintf("the image index %s pinned in the pod spec was not used: %v", idx, err))
			continue
		case !listed:
			notes = append(notes, fmt.Sprintf("the image index %s pinned in the pod spec does not list %s", idx, req.Image.Digest))
			continue
		}
		ires := e.verifyDigest(ctx, Request{Image: imageref.Image{Repository: req.Image.Repository, Digest: idx},
			Policies: missing, Fresh: req.Fresh, Credentials: req.Credentials, Revocations: req.Revocations, Reuse: req.Reuse,
			platform: req.Image.Digest})
		if ires.Deferred != "" {
			ires.Image = req.Image
			return ires
		}
		if unsigned(ires) {
			notes = append(notes, fmt.Sprintf("the image index %s pinned in the pod spec, which lists it, has no signature either", idx))
			continue
		}
		if score := verifiedCount(ires); score > bestScore {
			best, bestIndex, bestScore = ires, idx, score
		}
	}
	switch {
	case best != nil && (bestScore == len(missing) || unreadableErr == nil):
		return merge(res, at, req.Image, bestIndex, best)
	case unreadableErr != nil:
		// Could not verify, which is not unsigned: the verdict waits for the registry.
		for _, p := range missing {
			res.Policies[at[p.Name]] = unknown(p.Name, sigwatchv1alpha1.RegistryUnavailableReason,
				"%s has no signature of its own, and the image index %s pinned in the pod spec could not be read: %v", req.Image, unreadable, unreadableErr)
		}
		return res
	}
	if len(notes) == 0 {
		notes = append(notes, unsignedPlatformHint)
	}
	for _, p := range missing {
		res.Policies[at[p.Name]].Message += "; " + strings.Join(notes, "; ")
	}
	return res
}

// indexUnreadable reports whether reading an index failed in a way that says nothing about the image: the
// registry could not be read, or answered with other bytes than the digest's, or without the index that a
// pod runs from.
func indexUnreadable(ctx context.Context, err error) bool {
	return registry.IsUnavailable(err) || ctx.Err() != nil || errors.Is(err, registry.ErrDigestMismatch) || errors.Is(err, registry.ErrNotFound)
}

func verifiedCount(res *Result) int {
	n := 0
	for _, p := range res.Policies {
		if p.Result == sigwatchv1alpha1.PolicyVerified {
			n++
		}
	}
	return n
}

// unsignedPlatformHint ends the message of an unsigned digest that no pinned index vouches for.
const unsignedPlatformHint = "if it is one platform of a multi-arch image signed at its index only (a runtime may report " +
	"the platform manifest's digest), sign every platform too (cosign sign --recursive) or pin the index by digest in " +
	"the pod spec (image: REPO@sha256:INDEX), whose signatures then count: a tag is never resolved"

// unsigned reports whether the verdict is SignatureMissing for every policy (and there is one).
func unsigned(res *Result) bool {
	if len(res.Policies) == 0 {
		return false
	}
	for _, p := range res.Policies {
		if p.Reason != sigwatchv1alpha1.SignatureMissingReason {
			return false
		}
	}
	return true
}

// firstIndexes are the request's distinct indexes other than the digest itself, at most MaxIndexes.
func firstIndexes(req Request) []string {
	var out []string
	for _, d := range req.Indexes {
		if d == req.Image.Digest || !imageref.ValidDigest(d) || contains(out, d) {
			continue
		}
		if out = append(out, d); len(out) == MaxIndexes {
			break
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// indexLists reads the index by digest (the registry client checks the bytes against it, and bounds
// them) and reports whether it is an image index that lists the request's digest among its manifests.
func (e *Engine) indexLists(ctx context.Context, req Request, index string) (bool, error) {
	// The answer is the content's (the index's digest covers it), so it is kept, by the credentials that
	// read it: a judgment again (Reuse) needs no read.
	key := ""
	if req.Credentials.Keychain == nil || req.Credentials.ID != "" {
		key = e.discoverer(req.Credentials).credentials + "|" + req.Image.Repository + "|" + index + "|" + req.Image.Digest
		if v, ok := e.indexAnswers.Get(key); ok {
			return v.(bool), nil
		}
	}
	listed, err := e.readIndexLists(ctx, req, index)
	if err == nil && key != "" {
		e.indexAnswers.Add(key, listed)
	}
	return listed, err
}

func (e *Engine) readIndexLists(ctx context.Context, req Request, index string) (bool, error) {
	repo, err := name.NewRepository(req.Image.Repository, name.WeakValidation)
	if err != nil {
		return false, err
	}
	h, err := v1.NewHash(index)
	if err != nil {
		return false, err
	}
	body, _, err := e.opts.Registry.With(req.Credentials).Manifest(ctx, repo, h, 0)
	if err != nil {
		return false, err
	}
	// What it is comes from the bytes the digest covers, never from the Content-Type header.
	var m struct {
		MediaType string `json:"mediaType"`
		Manifests []struct {
			Digest string `json:"digest"`
		} `json:"manifests"`
		Layers json.RawMessage `json:"layers"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return false, fmt.Errorf("parsing it: %w", err)
	}
	switch mt := types.MediaType(m.MediaType); {
	case mt == types.OCIImageIndex, mt == types.DockerManifestList, mt == "" && m.Manifests != nil && m.Layers == nil:
	default:
		if mt == "" {
			mt = "manifest without a media type or manifests"
		}
		return false, fmt.Errorf("it is a %s, not an image index", mt)
	}
	if len(m.Manifests) > maxIndexManifests {
		return false, fmt.Errorf("it lists %d manifests, more than the %d sigwatch reads", len(m.Manifests), maxIndexManifests)
	}
	for _, d := range m.Manifests {
		if d.Digest == req.Image.Digest {
			return true, nil
		}
	}
	return false, nil
}

// merge puts the index's verdicts in res for the policies it was judged under: each message says where
// the signature was, and each of its signatures carries the index's digest.
func merge(res *Result, at map[string]int, img imageref.Image, index string, ires *Result) *Result {
	for _, pr := range ires.Policies {
		pr.Message = fmt.Sprintf("via the image index %s pinned in the pod spec, which lists %s: %s", index, img.Digest, pr.Message)
		res.Policies[at[pr.Policy]] = pr
	}
	for _, sg := range ires.Signatures {
		sg.SignedDigest = index
		res.Signatures = append(res.Signatures, sg)
	}
	res.Cached = res.Cached && ires.Cached
	if ires.ChangesAt != nil && (res.ChangesAt == nil || ires.ChangesAt.Before(*res.ChangesAt)) {
		res.ChangesAt = ires.ChangesAt
	}
	sort.SliceStable(res.Signatures, func(i, j int) bool {
		return res.Signatures[i].Verified() && !res.Signatures[j].Verified()
	})
	return res
}
