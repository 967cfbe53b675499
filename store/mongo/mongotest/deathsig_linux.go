package mongotest

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel send SIGTERM to the server if the test
// process dies without running its cleanups, so no server is left behind.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
