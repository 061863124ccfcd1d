package verification

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/imageref"
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

// verifyWithIndexes is Verify for a request that names indexes: the digest's own verdict, unless it has no
// signature for any policy, in which case the verdict of the first named index that lists the digest and
// has signatures.
func (e *Engine) verifyWithIndexes(ctx context.Context, req Request) *Result {
	res := e.verifyDigest(ctx, req)
	if res.Deferred != "" || !unsigned(res) {
		return res
	}
	var notes []string
	for _, idx := range firstIndexes(req) {
		listed, err := e.indexLists(ctx, req, idx)
		switch {
		case err != nil && (registry.IsUnavailable(err) || ctx.Err() != nil):
			// Could not verify, which is not unsigned: the verdict waits for the registry.
			out := &Result{Image: req.Image, Time: res.Time}
			for _, p := range req.Policies {
				out.Policies = append(out.Policies, unknown(p.Name, sigwatchv1alpha1.RegistryUnavailableReason,
					"%s has no signature of its own, and the image index %s pinned in the pod spec could not be read: %v", req.Image, idx, err))
			}
			return out
		case err != nil:
			notes = append(notes, fmt.Sprintf("the image index %s pinned in the pod spec was not used: %v", idx, err))
			continue
		case !listed:
			notes = append(notes, fmt.Sprintf("the image index %s pinned in the pod spec does not list %s", idx, req.Image.Digest))
			continue
		}
		ires := e.verifyDigest(ctx, Request{Image: imageref.Image{Repository: req.Image.Repository, Digest: idx},
			Policies: req.Policies, Fresh: req.Fresh, Credentials: req.Credentials})
		if ires.Deferred != "" {
			return ires
		}
		if unsigned(ires) {
			notes = append(notes, fmt.Sprintf("the image index %s pinned in the pod spec, which lists it, has no signature either", idx))
			continue
		}
		return fromIndex(req.Image, idx, ires)
	}
	if len(notes) == 0 {
		notes = append(notes, unsignedPlatformHint)
	}
	for i := range res.Policies {
		res.Policies[i].Message += "; " + strings.Join(notes, "; ")
	}
	return res
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
	repo, err := name.NewRepository(req.Image.Repository, name.WeakValidation)
	if err != nil {
		return false, err
	}
	h, err := v1.NewHash(index)
	if err != nil {
		return false, err
	}
	body, mt, err := e.opts.Registry.With(req.Credentials).Manifest(ctx, repo, h, 0)
	if err != nil {
		return false, err
	}
	if mt != types.OCIImageIndex && mt != types.DockerManifestList {
		return false, fmt.Errorf("it is a %s, not an image index", mt)
	}
	var m struct {
		Manifests []struct {
			Digest string `json:"digest"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return false, fmt.Errorf("parsing it: %w", err)
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

// fromIndex is the index's verdict, said of the platform digest img: each message says where the
// signature was, and each signature carries the index's digest.
func fromIndex(img imageref.Image, index string, ires *Result) *Result {
	res := *ires
	res.Image = img
	res.Policies = append([]PolicyResult(nil), ires.Policies...)
	for i := range res.Policies {
		res.Policies[i].Message = fmt.Sprintf("via the image index %s pinned in the pod spec, which lists %s: %s",
			index, img.Digest, res.Policies[i].Message)
	}
	res.Signatures = append([]Signature(nil), ires.Signatures...)
	for i := range res.Signatures {
		res.Signatures[i].SignedDigest = index
	}
	return &res
}
