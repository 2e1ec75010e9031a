//go:build unix

package upstream

import "syscall"

// signalGroup sends sig to the process group led by pid. ESRCH (nothing left
// to signal) is not an error.
func signalGroup(pid int, sig syscall.Signal) error {
	if pid <= 0 {
		return nil
	}
	if err := syscall.Kill(-pid, sig); err != nil && err != syscall.ESRCH {
		return err
	}
	return nil
}
