//go:build !unix

package mongotest

import "os"

// terminateSignal: without SIGTERM, stop falls back to killing the process.
var terminateSignal os.Signal = os.Interrupt
