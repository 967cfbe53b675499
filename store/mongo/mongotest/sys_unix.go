//go:build unix

package mongotest

import (
	"os"
	"syscall"
)

// terminateSignal asks the test server to shut down cleanly.
var terminateSignal os.Signal = syscall.SIGTERM
