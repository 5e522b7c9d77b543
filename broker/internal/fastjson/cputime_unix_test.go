//go:build unix

package fastjson

import (
	"syscall"
	"time"
)

// cpuTime returns the user and system CPU time this process has used, GC
// workers included. Benchmarks report it per op because wall time is
// unreliable on a shared, loaded machine.
func cpuTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
