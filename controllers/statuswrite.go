package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// EventReasonStatusWriteFailed (Warning): the API server did not take the status sigwatch computed for
// the object, so the status it shows is stale; it is retried with backoff.
const EventReasonStatusWriteFailed = "StatusWriteFailed"

// conflictRetry is how soon a status patch that met a conflict is made again.
const conflictRetry = time.Second

// statusPatchFailed decides what a failed status patch of obj (of the kind) means. The object was deleted
// meanwhile: nothing. A conflict: a quiet retry soon. Anything else, above all a status the API server
// rejects (which would otherwise leave a stale verdict standing with nothing to show for it), is logged at
// error level, counted, announced with a Warning Event on the object and returned, to be retried with
// backoff.
func statusPatchFailed(ctx context.Context, recorder events.EventRecorder, m *Metrics, kind string, obj client.Object, err error) (time.Duration, error) {
	switch {
	case apierrors.IsNotFound(err):
		return 0, nil
	case apierrors.IsConflict(err):
		log.FromContext(ctx).V(1).Info("status patch met a conflict; retrying", "error", err.Error())
		return conflictRetry, nil
	}
	reason := string(apierrors.ReasonForError(err))
	if reason == "" {
		reason = "Unknown"
	}
	log.FromContext(ctx).Error(err, "the status could not be written: the status shown is stale",
		strings.ToLower(kind[:1])+kind[1:], klog.KObj(obj), "reason", reason)
	m.observeStatusWriteError(kind, reason)
	if recorder != nil {
		// The Events API takes notes of at most 1024 bytes.
		recorder.Eventf(obj, nil, corev1.EventTypeWarning, EventReasonStatusWriteFailed, "WriteStatus", "%s",
			truncate("the status could not be written, the status shown is stale: "+strings.ReplaceAll(err.Error(), "\n", " "), 1024))
	}
	return 0, fmt.Errorf("patching the status of %s %s: %w", kind, klog.KObj(obj), err)
}
