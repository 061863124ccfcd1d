package controllers

import "github.com/sigwatch/sigwatch/internal/imageref"

// SignedImageName is the name the pod controller tries first for the SignedImage of a digest (for the
// tests of package controllers_test).
func SignedImageName(repository, digest string) string {
	return signedImageName(imageref.Image{Repository: repository, Digest: digest}, 0)
}
