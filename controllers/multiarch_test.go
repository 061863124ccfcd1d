package controllers

import (
	"fmt"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"

	"github.com/sigwatch/sigwatch/internal/imageref"
)

func digestOf(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }

// podRunningAs is a pod whose container c has spec image spec and runs imageID.
func podRunningAs(spec, imageID string) corev1.Pod {
	return corev1.Pod{
		Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: spec}}},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "c", Image: spec, ImageID: imageID}}},
	}
}

func TestPinnedIndexes(t *testing.T) {
	platform := imageref.Image{Repository: "ghcr.io/yourorg/app", Digest: digestOf('a')}
	running := "docker-pullable://ghcr.io/yourorg/app@" + platform.Digest
	cases := []struct {
		name string
		pods []corev1.Pod
		want []string
	}{
		{"the spec pins an index", []corev1.Pod{podRunningAs("ghcr.io/yourorg/app@"+digestOf('b'), running)}, []string{digestOf('b')}},
		{"a tag and a digest", []corev1.Pod{podRunningAs("ghcr.io/yourorg/app:v1@"+digestOf('b'), running)}, []string{digestOf('b')}},
		{"the spec pins the running digest itself", []corev1.Pod{podRunningAs("ghcr.io/yourorg/app@"+platform.Digest, running)}, nil},
		{"a tag only: never resolved", []corev1.Pod{podRunningAs("ghcr.io/yourorg/app:v1", running)}, nil},
		{"a digest of another repository", []corev1.Pod{podRunningAs("ghcr.io/evil/app@"+digestOf('b'), running)}, nil},
		{"a pod running another digest", []corev1.Pod{podRunningAs("ghcr.io/yourorg/app@"+digestOf('b'), "docker-pullable://ghcr.io/yourorg/app@"+digestOf('c'))}, nil},
		{"no imageID yet", []corev1.Pod{podRunningAs("ghcr.io/yourorg/app@"+digestOf('b'), "")}, nil},
		{"sorted, without duplicates", []corev1.Pod{
			podRunningAs("ghcr.io/yourorg/app@"+digestOf('c'), running),
			podRunningAs("ghcr.io/yourorg/app@"+digestOf('b'), running),
			podRunningAs("ghcr.io/yourorg/app@"+digestOf('c'), running),
		}, []string{digestOf('b'), digestOf('c')}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(pinnedIndexes(tc.pods, platform)).To(Equal(tc.want))
		})
	}

	t.Run("at most four", func(t *testing.T) {
		var pods []corev1.Pod
		for i := range 10 {
			pods = append(pods, podRunningAs(fmt.Sprintf("ghcr.io/yourorg/app@sha256:%064d", i+1), running))
		}
		got := pinnedIndexes(pods, platform)
		NewWithT(t).Expect(got).To(HaveLen(4))
		NewWithT(t).Expect(got[0]).To(Equal(fmt.Sprintf("sha256:%064d", 1)))
	})
}
