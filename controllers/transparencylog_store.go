package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/logmonitor"
)

// +kubebuilder:rbac:groups=sigwatch.dev,resources=transparencylogs,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups=sigwatch.dev,resources=transparencylogs/status,verbs=get;update;patch

// TransparencyLogStore keeps what the log monitor verified of each log in the TransparencyLog named
// after it: the last verified checkpoint (so that a restart or another replica continues from it), the
// evidence of an inconsistency, and conditions. It announces a transition with an Event, and sets the
// log's metrics.
type TransparencyLogStore struct {
	// Client writes; Reader reads, from the API server rather than a cache, so that a TransparencyLog just
	// written (or deleted by a person) is seen as it is.
	Client   client.Client
	Reader   client.Reader
	Recorder events.EventRecorder
	Metrics  *Metrics
}

var _ logmonitor.Store = (*TransparencyLogStore)(nil)

// Load returns the log's record; false when its TransparencyLog does not exist.
func (s *TransparencyLogStore) Load(ctx context.Context, l logmonitor.Log) (logmonitor.Record, bool, error) {
	var tl sigwatchv1alpha1.TransparencyLog
	if err := s.Reader.Get(ctx, types.NamespacedName{Name: l.Name()}, &tl); err != nil {
		if apierrors.IsNotFound(err) {
			return logmonitor.Record{}, false, nil
		}
		return logmonitor.Record{}, false, fmt.Errorf("reading TransparencyLog %s: %w", l.Name(), err)
	}
	r := recordOf(l, tl.Status)
	r.ID = string(tl.UID)
	return r, true, nil
}

// Save writes the record into the log's TransparencyLog, creating it first when needed. A write that
// fails is loud (logged, counted, and an Event); a conflict with another replica is left to the next
// read of the log.
func (s *TransparencyLogStore) Save(ctx context.Context, r logmonitor.Record) (string, error) {
	logger := log.FromContext(ctx).WithValues("transparencyLog", r.Log.Name())
	var tl sigwatchv1alpha1.TransparencyLog
	err := s.Reader.Get(ctx, types.NamespacedName{Name: r.Log.Name()}, &tl)
	if apierrors.IsNotFound(err) {
		tl = sigwatchv1alpha1.TransparencyLog{ObjectMeta: metav1.ObjectMeta{Name: r.Log.Name(),
			Labels: map[string]string{sigwatchv1alpha1.ManagedByLabel: sigwatchv1alpha1.ManagedByValue}}}
		err = s.Client.Create(ctx, &tl)
	}
	if err != nil {
		logger.Error(err, "the TransparencyLog could not be read or created: what was verified of the log is not persisted")
		s.Metrics.observeStatusWriteError("TransparencyLog", reasonOf(err))
		return "", fmt.Errorf("TransparencyLog %s: %w", r.Log.Name(), err)
	}
	if r.ID != "" && string(tl.UID) != r.ID {
		// Deleted and made again (by another replica) since the record was read: the monitor starts over
		// at its next read rather than writing what it held of the deleted one.
		return "", fmt.Errorf("TransparencyLog %s was made again since it was read", r.Log.Name())
	}
	before := tl.Status.DeepCopy()
	tl.Status = transparencyLogStatus(tl.Status, r)
	s.Metrics.observeLog(r)
	if equality.Semantic.DeepEqual(*before, tl.Status) {
		return string(tl.UID), nil
	}
	if err := s.Client.Status().Update(ctx, &tl); err != nil {
		if apierrors.IsConflict(err) {
			logger.V(1).Info("another writer updated the TransparencyLog; the next read of the log retries", "error", err.Error())
			return "", err
		}
		_, err = statusPatchFailed(ctx, s.Recorder, s.Metrics, "TransparencyLog", &tl, err)
		return "", err
	}
	s.announce(ctx, &tl, *before)
	return string(tl.UID), nil
}

// announce records the transitions of a TransparencyLog: an inconsistency found, the log unavailable, the
// log available again.
func (s *TransparencyLogStore) announce(ctx context.Context, tl *sigwatchv1alpha1.TransparencyLog, before sigwatchv1alpha1.TransparencyLogStatus) {
	if s.Recorder == nil {
		return
	}
	if tl.Status.Inconsistency != nil && before.Inconsistency == nil {
		inc := tl.Status.Inconsistency
		s.Recorder.Eventf(tl, nil, corev1.EventTypeWarning, EventReasonLogInconsistent, "Monitor", "%s",
			truncate(fmt.Sprintf("transparency log %s is inconsistent (%s): %s", tl.Status.Origin, inc.Kind, inc.Message), 1024))
		log.FromContext(ctx).Info("transparency log inconsistent: a Sigstore-wide incident", "transparencyLog", tl.Name, "kind", inc.Kind, "message", inc.Message)
	}
	was := meta.FindStatusCondition(before.Conditions, sigwatchv1alpha1.ReadyCondition)
	now := meta.FindStatusCondition(tl.Status.Conditions, sigwatchv1alpha1.ReadyCondition)
	switch {
	case now == nil || (was != nil && was.Status == now.Status):
	case now.Status == metav1.ConditionFalse:
		s.Recorder.Eventf(tl, nil, corev1.EventTypeWarning, EventReasonLogUnavailable, "Monitor", "%s", truncate(now.Message, 1024))
	case was != nil:
		s.Recorder.Eventf(tl, nil, corev1.EventTypeNormal, EventReasonLogAvailable, "Monitor", "%s", truncate(now.Message, 1024))
	}
}

func reasonOf(err error) string {
	if r := string(apierrors.ReasonForError(err)); r != "" {
		return r
	}
	return "Unknown"
}
