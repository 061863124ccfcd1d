package controllers

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/policyreport"
)

// PolicyReportReconciler writes the wgpolicyk8s.io/v1alpha2 PolicyReports of a namespace from its
// SignedImages: the request is the namespace (its Name), policyreport decides what to write.
type PolicyReportReconciler struct {
	// Client writes the reports.
	Client client.Client
	// Reader reads the SignedImages (the manager's cache).
	Reader client.Reader
	// APIReader lists sigwatch's reports, by label, from the API server: PolicyReports are not cached,
	// so that the reports of other tools (Kyverno writes one per resource) never fill sigwatch's memory.
	APIReader client.Reader
	// Owns says which namespaces are this replica's (nil: all); only the owner writes a namespace's
	// reports.
	Owns func(namespace string) bool
	// Delay batches the changes of a namespace: a change waits this long (default 5s), and the changes
	// that come meanwhile are written with it, so that 500 SignedImages verified in a burst are one
	// write, not 500.
	Delay time.Duration
	// Resync is how often a namespace with reports is compared again without a change (default 10m):
	// it restores a report deleted or edited by hand.
	Resync time.Duration
}

// +kubebuilder:rbac:groups=wgpolicyk8s.io,resources=policyreports,verbs=get;list;watch;create;update;patch;delete

func (r *PolicyReportReconciler) defaults() {
	if r.Delay <= 0 {
		r.Delay = 5 * time.Second
	}
	if r.Resync <= 0 {
		r.Resync = 10 * time.Minute
	}
}

// SetupWithManager registers the controller.
func (r *PolicyReportReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.defaults()
	return ctrl.NewControllerManagedBy(mgr).
		Named("policyreport").
		Watches(&sigwatchv1alpha1.SignedImage{}, namespaceAfter(r.Delay), builder.WithPredicates(inShard(r.Owns), reportedChanged())).
		WatchesRawSource(source.Func(r.existingReports)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 2}).
		Complete(r)
}

// existingReports enqueues, once at start, the namespaces that hold sigwatch's reports: one whose
// SignedImages all went while the manager was away gets no SignedImage event, and its reports would
// otherwise stay as they were for ever. Only their metadata is read, a page at a time.
func (r *PolicyReportReconciler) existingReports(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	go func() {
		seen := map[string]bool{}
		cont := ""
		for {
			list := &metav1.PartialObjectMetadataList{}
			list.SetGroupVersionKind(policyreport.GroupVersionKind.GroupVersion().WithKind(policyreport.Kind + "List"))
			if err := r.APIReader.List(ctx, list, client.MatchingLabels{policyreport.ManagedByLabel: policyreport.ManagedByValue},
				client.Limit(500), client.Continue(cont)); err != nil {
				if ctx.Err() == nil {
					log.FromContext(ctx).Error(err, "listing sigwatch's PolicyReports at start; namespaces whose SignedImages are all gone keep their reports until the next change there")
				}
				return
			}
			for _, m := range list.Items {
				if ns := m.GetNamespace(); !seen[ns] && (r.Owns == nil || r.Owns(ns)) {
					seen[ns] = true
					q.AddAfter(reconcile.Request{NamespacedName: types.NamespacedName{Name: ns}}, r.Delay)
				}
			}
			if cont = list.GetContinue(); cont == "" {
				return
			}
		}
	}()
	return nil
}

// namespaceAfter enqueues the namespace of the object, after delay: a namespace already waiting keeps
// its earlier time, so a burst of changes is one reconcile.
func namespaceAfter(delay time.Duration) handler.EventHandler {
	add := func(o client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		q.AddAfter(reconcile.Request{NamespacedName: types.NamespacedName{Name: o.GetNamespace()}}, delay)
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(e.Object, q)
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(e.ObjectNew, q)
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(e.Object, q)
		},
		GenericFunc: func(_ context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(e.Object, q)
		},
	}
}

// reportedChanged passes the SignedImage updates that can change a report: its verdicts, workloads,
// whether a pod runs it, or deletion. A reverification with the same verdicts (a new lastAttemptTime) is not work.
func reportedChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		before, ok1 := e.ObjectOld.(*sigwatchv1alpha1.SignedImage)
		after, ok2 := e.ObjectNew.(*sigwatchv1alpha1.SignedImage)
		if !ok1 || !ok2 {
			return true
		}
		return before.DeletionTimestamp.IsZero() != after.DeletionTimestamp.IsZero() ||
			(before.Status.UnusedSince == nil) != (after.Status.UnusedSince == nil) ||
			!reflect.DeepEqual(before.Spec, after.Spec) ||
			!reflect.DeepEqual(before.Status.Policies, after.Status.Policies) ||
			!reflect.DeepEqual(before.Status.Workloads, after.Status.Workloads)
	}}
}

// Reconcile brings the namespace's reports in line with its SignedImages, writing only what changed.
func (r *PolicyReportReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ns := req.Name
	if r.Owns != nil && !r.Owns(ns) {
		return ctrl.Result{}, nil // another shard's: its cached SignedImages are stripped
	}
	var images sigwatchv1alpha1.SignedImageList
	if err := r.Reader.List(ctx, &images, client.InNamespace(ns)); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing the SignedImages of namespace %s: %w", ns, err)
	}
	existing, objects, err := r.reports(ctx, ns)
	if err != nil {
		return ctrl.Result{}, err
	}
	desired := policyreport.Build(ns, images.Items, existing)
	plan := policyreport.Diff(existing, desired)
	for _, name := range plan.Conflict {
		logConflict(ctx, ns, name)
	}
	if err := r.write(ctx, ns, plan, objects); err != nil {
		return ctrl.Result{}, err
	}
	if len(desired) == 0 {
		return ctrl.Result{}, nil // nothing left to restore
	}
	// Up to a tenth later, so that namespaces first seen together do not resync together for ever.
	return ctrl.Result{RequeueAfter: r.Resync + rand.N(r.Resync/10+1)}, nil
}

// reports are the namespace's reports with sigwatch's label, read and as objects by name.
func (r *PolicyReportReconciler) reports(ctx context.Context, ns string) ([]policyreport.Report, map[string]*unstructured.Unstructured, error) {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(policyreport.GroupVersionKind.GroupVersion().WithKind(policyreport.Kind + "List"))
	if err := r.APIReader.List(ctx, list, client.InNamespace(ns),
		client.MatchingLabels{policyreport.ManagedByLabel: policyreport.ManagedByValue}); err != nil {
		return nil, nil, fmt.Errorf("listing the PolicyReports of namespace %s: %w", ns, err)
	}
	reports := make([]policyreport.Report, 0, len(list.Items))
	objects := make(map[string]*unstructured.Unstructured, len(list.Items))
	for i := range list.Items {
		u := &list.Items[i]
		rep, err := policyreport.FromUnstructured(u)
		if err != nil {
			log.FromContext(ctx).Info("PolicyReport unreadable; it is rewritten", "policyReport", klog.KObj(u), "reason", err.Error())
		}
		reports = append(reports, rep)
		objects[u.GetName()] = u
	}
	return reports, objects, nil
}

// write carries out the plan: creates, updates (at the resourceVersion read) and deletes (of that
// resourceVersion only, so a report relabelled meanwhile is not deleted).
func (r *PolicyReportReconciler) write(ctx context.Context, ns string, plan policyreport.Plan, objects map[string]*unstructured.Unstructured) error {
	logger := log.FromContext(ctx).WithValues("namespace", ns)
	var errs []error
	for _, rep := range plan.Create {
		u, err := policyreport.New(rep)
		if err == nil {
			err = r.Client.Create(ctx, u)
		}
		switch {
		case terminating(err):
			return nil // the namespace goes, and its reports with it
		case apierrors.IsAlreadyExists(err):
			logConflict(ctx, ns, rep.Name) // not in the labelled list: someone else's
		case err != nil:
			errs = append(errs, fmt.Errorf("creating PolicyReport %s/%s: %w", ns, rep.Name, err))
		default:
			logger.V(1).Info("PolicyReport created", "policyReport", klog.KRef(ns, rep.Name), "results", len(rep.Results))
		}
	}
	for _, rep := range plan.Update {
		u := objects[rep.Name]
		err := policyreport.ApplyTo(u, rep)
		if err == nil {
			err = r.Client.Update(ctx, u)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("updating PolicyReport %s/%s: %w", ns, rep.Name, err))
			continue
		}
		logger.V(1).Info("PolicyReport updated", "policyReport", klog.KRef(ns, rep.Name), "results", len(rep.Results))
	}
	for _, name := range plan.Delete {
		u := objects[name]
		err := r.Client.Delete(ctx, u, client.Preconditions{UID: new(u.GetUID()), ResourceVersion: new(u.GetResourceVersion())})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting PolicyReport %s/%s: %w", ns, name, err))
			continue
		}
		logger.V(1).Info("PolicyReport deleted", "policyReport", klog.KRef(ns, name))
	}
	return errors.Join(errs...)
}

// terminating says whether a create failed because the namespace is being deleted.
func terminating(err error) bool {
	return err != nil && apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause)
}

// logConflict says that a report of another owner holds a name sigwatch would write.
func logConflict(ctx context.Context, ns, name string) {
	log.FromContext(ctx).Info("a PolicyReport without the label "+policyreport.ManagedByLabel+"="+policyreport.ManagedByValue+
		" has the name of one of sigwatch's reports: it is left alone, and those results are not written",
		"policyReport", klog.KRef(ns, name))
}
