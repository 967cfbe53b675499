//go:build !linux

package mongotest

import "os/exec"

// setDeathSignal does nothing on this platform; a test process that dies
// without running its cleanups may leave its server running.
func setDeathSignal(*exec.Cmd) {}
