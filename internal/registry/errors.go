package registry

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Errors returned by Client, to be tested with errors.Is. Messages always name the image reference.
var (
	// ErrNotFound reports that the manifest, blob or repository asked for does not exist (HTTP 404,
	// MANIFEST_UNKNOWN, BLOB_UNKNOWN or NAME_UNKNOWN). For signature tags it means "no signatures".
	ErrNotFound = errors.New("not found")
	// ErrTooLarge reports a manifest, listing or blob larger than the configured limit.
	ErrTooLarge = errors.New("too large")
	// ErrDigestMismatch reports content whose digest differs from the one asked for.
	ErrDigestMismatch = errors.New("content does not match its digest")
	// ErrTooMany reports a referrers listing with more descriptors than Options.MaxReferrers.
	ErrTooMany = errors.New("too many referrers")
)

// errUnavailable marks errors for which the registry could not be read; see IsUnavailable.
var errUnavailable = errors.New("registry unavailable")

// IsUnavailable reports whether err means the registry could not be read: a network error or timeout,
// a 5xx or 429 answer (after retries), a refused plain-HTTP connection, or an authentication or
// authorization failure (401/403, said so in the message). Such an error means "could not verify",
// never "unverified". ErrNotFound, ErrTooLarge, ErrDigestMismatch and ErrTooMany are not unavailable:
// the registry answered, and the answer is the problem.
func IsUnavailable(err error) bool { return errors.Is(err, errUnavailable) }

// classify marks an error from a request for a manifest, blob or listing.
func classify(err error) error {
	var terr *transport.Error
	if errors.As(err, &terr) && isNotFound(terr) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return classifySetup(err)
}

// classifySetup marks an error from pinging a registry or fetching a token, where a 404 does not say
// anything about the image.
func classifySetup(err error) error {
	if _, ok := err.(*cleanError); !ok {
		err = clean(err)
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		switch {
		case isDenied(terr):
			return fmt.Errorf("%w: access denied, check the pull credentials: %w", errUnavailable, err)
		case terr.StatusCode == http.StatusTooManyRequests:
			return fmt.Errorf("%w: rate limited: %w", errUnavailable, err)
		}
	}
	return fmt.Errorf("%w: %w", errUnavailable, err)
}

func isNotFound(terr *transport.Error) bool {
	if terr.StatusCode == http.StatusNotFound {
		return true
	}
	return hasCode(terr, transport.ManifestUnknownErrorCode, transport.BlobUnknownErrorCode, transport.NameUnknownErrorCode)
}

func isDenied(terr *transport.Error) bool {
	if terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden {
		return true
	}
	return hasCode(terr, transport.UnauthorizedErrorCode, transport.DeniedErrorCode)
}

func hasCode(terr *transport.Error, codes ...transport.ErrorCode) bool {
	for _, d := range terr.Errors {
		for _, c := range codes {
			if d.Code == c {
				return true
			}
		}
	}
	return false
}

// maxErrorText bounds what a registry can put into an error message (and so into a SignedImage's status
// and Events): error bodies are the registry's words, not facts, and up to 64 KiB of them are read.
const maxErrorText = 300

// cleanError is an error whose text was shortened and stripped of control characters; it unwraps to the
// original so that classification still sees status codes.
type cleanError struct {
	msg   string
	cause error
}

func (e *cleanError) Error() string { return e.msg }
func (e *cleanError) Unwrap() error { return e.cause }

// clean bounds and sanitizes the text of an error that may carry a registry's response body.
func clean(err error) error {
	if err == nil {
		return nil
	}
	return &cleanError{msg: Snippet(err.Error(), maxErrorText), cause: err}
}

// Snippet returns s with every control or non-printable character replaced by a space, runs of spaces
// collapsed, and cut to at most n bytes (on a rune boundary, "…" appended when cut).
func Snippet(s string, n int) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			r = ' '
		}
		if r == ' ' {
			if space {
				continue
			}
			space = true
		} else {
			space = false
		}
		if b.Len()+utf8.RuneLen(r) > n {
			return strings.TrimSpace(b.String()) + "…"
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}
