//go:build !unix

package resttest

import "time"

// CPUTime is the CPU time the process has used; 0 on this system.
func CPUTime() time.Duration { return 0 }
