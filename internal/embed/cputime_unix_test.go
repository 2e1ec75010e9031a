//go:build unix

package embed

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user + system) the process has used, or -1
// when unknown. Benchmarks report it because wall time on a shared machine
// measures the neighbours too.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
