//go:build unix && !linux

package upstream

import "syscall"

// sysProcAttr puts the child in its own process group. There is no
// parent-death signal outside Linux: there a child outlives a conductor killed
// with SIGKILL until it notices that its stdin is closed.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
