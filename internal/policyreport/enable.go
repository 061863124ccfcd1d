package policyreport

import (
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/discovery"
)

// Mode is the manager's --policy-reports setting.
type Mode string

const (
	// ModeAuto writes reports when the API server serves wgpolicyk8s.io/v1alpha2 policyreports.
	ModeAuto Mode = "auto"
	// ModeOn writes reports, and fails to start when the API is not served.
	ModeOn Mode = "true"
	// ModeOff never writes reports.
	ModeOff Mode = "false"
)

// ParseMode reads a --policy-reports value.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeAuto, ModeOn, ModeOff:
		return m, nil
	default:
		return "", fmt.Errorf("--policy-reports must be auto, true or false, not %q", s)
	}
}

// Enabled decides whether reports are written, given whether the API server serves them, and says why
// (for the one log line at start).
func (m Mode) Enabled(served bool) (bool, string, error) {
	switch {
	case m == ModeOff:
		return false, "--policy-reports=false", nil
	case m == ModeOn && !served:
		return false, "", fmt.Errorf("--policy-reports=true, but the API server does not serve %s/%s %s: install the PolicyReport CRD (config/crd/policyreport) or use --policy-reports=auto", Group, Version, Resource)
	case m == ModeOn:
		return true, "--policy-reports=true", nil
	case served:
		return true, "the API server serves " + Group + "/" + Version + " " + Resource, nil
	default:
		return false, "the API server does not serve " + Group + "/" + Version + " " + Resource + " (install the CRD and restart to write them)", nil
	}
}

// Served asks the API server's discovery whether it serves wgpolicyk8s.io/v1alpha2 policyreports. A
// group version it does not serve is false; any other failure is an error, not a false: "could not
// ask" is not "absent".
func Served(d discovery.ServerResourcesInterface) (bool, error) {
	list, err := d.ServerResourcesForGroupVersion(Group + "/" + Version)
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("asking the API server whether it serves %s/%s %s: %w", Group, Version, Resource, err)
	}
	for _, r := range list.APIResources {
		if r.Name == Resource && r.Namespaced {
			return true, nil
		}
	}
	return false, nil
}
