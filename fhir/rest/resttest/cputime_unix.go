//go:build unix

package resttest

import (
	"syscall"
	"time"
)

// CPUTime is the CPU time the process has used, user and system: on a
// shared machine a steadier measure of work than the wall clock (0 where
// the system does not say).
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
