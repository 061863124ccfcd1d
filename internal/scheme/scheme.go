// Package scheme holds the runtime.Scheme of the manager and the tests: the built-in Kubernetes types and
// the sigwatch API.
package scheme

import (
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
)

// New returns a scheme with the built-in Kubernetes types and the sigwatch API.
func New() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(sigwatchv1alpha1.AddToScheme(s))
	return s
}
