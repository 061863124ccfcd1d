package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/sigwatch/sigwatch/internal/imageref"
	"github.com/sigwatch/sigwatch/internal/verification"
)

// runningImage is an image digest a pod runs and the containers that run it.
type runningImage struct {
	Image      imageref.Image
	Containers []string
}

// podImages returns the digests a pod runs, from its container statuses' imageIDs (init, regular and
// ephemeral containers); a container without an imageID yet counts when its spec image is pinned by
// digest. Tags are never resolved: a container known only by tag is skipped.
func podImages(pod *corev1.Pod) []runningImage {
	specImages := specImagesOf(pod)
	byImage := map[imageref.Image][]string{}
	seen := map[string]bool{}
	add := func(container, imageID, specImage string) {
		img, err := imageref.FromContainerStatus(imageID, specImage)
		if err != nil {
			return
		}
		seen[container] = true
		byImage[img] = append(byImage[img], container)
	}
	for _, statuses := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses, pod.Status.EphemeralContainerStatuses} {
		for _, st := range statuses {
			spec := specImages[st.Name]
			if spec == "" {
				spec = st.Image
			}
			if st.ImageID != "" {
				add(st.Name, st.ImageID, spec)
			}
		}
	}
	for name, spec := range specImages {
		if !seen[name] && strings.Contains(spec, "@sha256:") {
			add(name, "", spec)
		}
	}
	out := make([]runningImage, 0, len(byImage))
	for img, cs := range byImage {
		sort.Strings(cs)
		out = append(out, runningImage{Image: img, Containers: cs})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Image.String() < out[j].Image.String() })
	return out
}

// specImagesOf is the spec image of each container of the pod (init, regular and ephemeral), by name.
func specImagesOf(pod *corev1.Pod) map[string]string {
	out := map[string]string{}
	for _, c := range pod.Spec.InitContainers {
		out[c.Name] = c.Image
	}
	for _, c := range pod.Spec.Containers {
		out[c.Name] = c.Image
	}
	for _, c := range pod.Spec.EphemeralContainers {
		out[c.Name] = c.Image
	}
	return out
}

var notDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// signedImageNameAttempts bounds the names the pod controller tries for the SignedImage of a digest.
const signedImageNameAttempts = 8

// signedImageName is the attempt-th name of the SignedImage of an image digest: a readable tail of the
// repository and 128 bits of a hash of repository and digest (and attempt, from the second name on), a
// DNS-1123 label of at most 63 characters. A name is only a place: which digest a SignedImage is about is
// in its spec, and a later attempt is used when an earlier name holds the SignedImage of another digest.
func signedImageName(img imageref.Image, attempt int) string {
	key := img.String()
	if attempt > 0 {
		key += "#" + strconv.Itoa(attempt)
	}
	sum := sha256.Sum256([]byte(key))
	hash := hex.EncodeToString(sum[:16])
	tail := img.Repository[strings.LastIndex(img.Repository, "/")+1:]
	tail = strings.Trim(notDNS.ReplaceAllString(strings.ToLower(tail), "-"), "-")
	if max := 63 - 1 - len(hash); len(tail) > max {
		tail = strings.TrimRight(tail[:max], "-")
	}
	if tail == "" {
		return "image-" + hash
	}
	return tail + "-" + hash
}

// pinnedIndexes are the digests that the specs of pods' containers running img pin, in img's repository,
// when they are not img's digest: the image index of a multi-arch image whose runtime reports the platform
// manifest. At most verification.MaxIndexes, sorted. A tag is never resolved.
func pinnedIndexes(pods []corev1.Pod, img imageref.Image) []string {
	var out []string
	for i := range pods {
		pod := &pods[i]
		specs := specImagesOf(pod)
		for _, statuses := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses, pod.Status.EphemeralContainerStatuses} {
			for _, st := range statuses {
				running, err := imageref.FromContainerStatus(st.ImageID, specs[st.Name])
				if err != nil || st.ImageID == "" || running != img {
					continue
				}
				pinned, err := imageref.Parse(specs[st.Name])
				if err != nil || pinned.Repository != img.Repository || pinned.Digest == img.Digest || slices.Contains(out, pinned.Digest) {
					continue
				}
				out = append(out, pinned.Digest)
			}
		}
	}
	slices.Sort(out)
	return out[:min(len(out), verification.MaxIndexes)]
}

// runsImage reports whether a pod runs the image digest in one of its containers.
func runsImage(pod *corev1.Pod, img imageref.Image) bool {
	for _, ri := range podImages(pod) {
		if ri.Image == img {
			return true
		}
	}
	return false
}

// podRunning reports whether a pod counts as running the image: not finished and not being deleted.
func podRunning(pod *corev1.Pod) bool {
	return pod.DeletionTimestamp == nil && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}
