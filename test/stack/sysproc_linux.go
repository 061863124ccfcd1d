package stack

import "syscall"

// sysProcAttr puts a service in its own process group, so that Stop ends it and anything it started, and
// has the kernel kill it when the test process dies without calling Stop (a panic, a -timeout, SIGKILL):
// no orphaned servers. Pdeathsig follows the OS thread that started the service, which the Go runtime
// keeps for the life of the process unless a goroutine exits while locked to it (runtime.LockOSThread).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
