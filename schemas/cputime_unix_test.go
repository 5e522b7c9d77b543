//go:build unix

package schemas

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user and system) used so far by the whole
// process, GC included. Benchmarks report it per operation because wall time
// on a shared machine also counts other processes.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
