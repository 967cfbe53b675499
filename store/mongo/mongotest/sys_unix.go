//go:build unix

package mongotest

import (
	"os"
	"syscall"
)

// terminateSignal asks the test server to shut down cleanly.
var terminateSignal os.Signal = syscall.SIGTERM

// lockFile takes an exclusive flock on path, creating it if needed, and
// blocks until it has it. The lock is released by the returned function, or
// by the kernel if the process dies.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
