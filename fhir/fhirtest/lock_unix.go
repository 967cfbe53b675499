//go:build unix

package fhirtest

import (
	"os"
	"syscall"
)

// LockFile takes an exclusive flock on path, creating the file if needed,
// and blocks until it has it, so that parallel test processes (go test ./...
// runs each package as its own process) wait for one another around work
// such as a shared install or build. The lock is released by the returned
// function, or by the kernel if the process dies. On systems without flock
// it does not lock.
func LockFile(path string) (unlock func(), err error) {
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
