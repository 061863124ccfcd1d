package controllers

import (
	"encoding/base64"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/logmonitor"
)

// Event reasons of TransparencyLogs.
const (
	// EventReasonLogInconsistent (Warning): the log showed two signed checkpoints that cannot both be
	// true; the TransparencyLog keeps them.
	EventReasonLogInconsistent = "LogInconsistent"
	// EventReasonLogUnavailable (Warning): the log's checkpoint could not be read or does not verify.
	EventReasonLogUnavailable = "LogUnavailable"
	// EventReasonLogAvailable (Normal): the log's checkpoint is read and verified again.
	EventReasonLogAvailable = "LogAvailable"
)

// transparencyLogStatus is the status of a TransparencyLog that shows a monitor record.
func transparencyLogStatus(prev sigwatchv1alpha1.TransparencyLogStatus, r logmonitor.Record) sigwatchv1alpha1.TransparencyLogStatus {
	st := *prev.DeepCopy()
	st.Origin, st.LogID, st.URL = truncate(r.Log.Origin, 256), r.Log.ID, truncate(r.Log.URL, 1024)
	// Never a smaller checkpoint than the one stored: another replica may have verified a newer one
	// while this one's view is older (its read failed, or the log lags for it).
	if len(r.Checkpoint) > 0 && (prev.TreeSize == nil || r.Tree.N > *prev.TreeSize ||
		(r.Tree.N == *prev.TreeSize && prev.RootHash == base64.StdEncoding.EncodeToString(r.Tree.Hash[:]))) {
		n := r.Tree.N
		st.TreeSize = &n
		st.RootHash = base64.StdEncoding.EncodeToString(r.Tree.Hash[:])
		st.Checkpoint = string(r.Checkpoint)
		// When this checkpoint was first verified: written with it, never with another.
		st.LastVerifiedTime = nil
		if !r.VerifiedTime.IsZero() {
			st.LastVerifiedTime = &metav1.Time{Time: r.VerifiedTime}
		}
	}
	if !r.CheckedTime.IsZero() {
		st.LastCheckedTime = &metav1.Time{Time: r.CheckedTime}
	}
	if inc := r.Inconsistency; inc != nil {
		st.Inconsistency = &sigwatchv1alpha1.LogInconsistency{
			Kind: sigwatchv1alpha1.LogInconsistencyKind(inc.KindName()), DetectedTime: &metav1.Time{Time: inc.Detected},
			Message: truncate(inc.Message, 1024), TrustedCheckpoint: string(inc.Trusted), ConflictingCheckpoint: string(inc.Conflicting),
		}
	}
	now := r.CheckedTime
	consistent := metav1.Condition{Type: sigwatchv1alpha1.ConsistentCondition, Status: metav1.ConditionTrue,
		Reason: sigwatchv1alpha1.LogConsistentReason, Message: "every checkpoint read is consistent with the last one verified"}
	if st.Inconsistency != nil {
		consistent.Status, consistent.Reason = metav1.ConditionFalse, sigwatchv1alpha1.LogInconsistentReason
		consistent.Message = truncate(string(st.Inconsistency.Kind)+": "+st.Inconsistency.Message+
			" (both signed checkpoints are in status.inconsistency; delete this TransparencyLog to trust the log again)", 1024)
	}
	ready := metav1.Condition{Type: sigwatchv1alpha1.ReadyCondition, Status: metav1.ConditionTrue,
		Reason: sigwatchv1alpha1.LogReadyReason, Message: "the last checkpoint was read and verified"}
	if r.Problem != "" {
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, sigwatchv1alpha1.LogUnavailableReason, truncate(r.Problem, 1024)
	}
	for _, c := range []metav1.Condition{consistent, ready} {
		c.LastTransitionTime = metav1.Time{Time: now}
		meta.SetStatusCondition(&st.Conditions, c)
	}
	return st
}

// recordOf reads a monitor record back from a TransparencyLog's status.
func recordOf(l logmonitor.Log, st sigwatchv1alpha1.TransparencyLogStatus) logmonitor.Record {
	r := logmonitor.Record{Log: l, Checkpoint: []byte(st.Checkpoint)}
	if st.Checkpoint == "" {
		r.Checkpoint = nil
	}
	if st.LastVerifiedTime != nil {
		r.VerifiedTime = st.LastVerifiedTime.Time
	}
	if inc := st.Inconsistency; inc != nil {
		kind := logmonitor.Fork
		if inc.Kind == sigwatchv1alpha1.LogRollback {
			kind = logmonitor.Rollback
		}
		var detected time.Time
		if inc.DetectedTime != nil {
			detected = inc.DetectedTime.Time
		}
		r.Inconsistency = &logmonitor.Inconsistency{Kind: kind, Detected: detected, Message: inc.Message,
			Trusted: []byte(inc.TrustedCheckpoint), Conflicting: []byte(inc.ConflictingCheckpoint)}
	}
	return r
}
