//go:build unix && !linux

package stack

import "syscall"

// sysProcAttr puts a service in its own process group, so that Stop ends it and anything it started.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
