//go:build unix

package adapters_test

import (
	"syscall"
	"time"
)

// cpuTime returns the CPU time (user and system, every thread) the process
// has used, so that benchmarks can report throughput per CPU-second on a
// machine shared with other work.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
