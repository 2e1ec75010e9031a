//go:build linux

package upstream

import "syscall"

// sysProcAttr puts the child in its own process group, so that stopping it
// signals everything it started, and asks the kernel to SIGKILL it when the
// thread that forked it exits. startProcess keeps that thread alive (locked to
// the goroutine that waits for the child) for the child's whole life; when the
// conductor dies, even by SIGKILL, its threads exit and the child is killed.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
