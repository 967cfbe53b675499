//go:build !unix

package mongotest

import "os"

// terminateSignal: without SIGTERM, stop falls back to killing the process.
var terminateSignal os.Signal = os.Interrupt

// lockFile does not lock on this platform: parallel test processes may each
// build the binary; the final rename keeps the result whole.
func lockFile(string) (func(), error) { return func() {}, nil }
