//go:build unix

package fhirtest

import (
	"path/filepath"
	"testing"
	"time"
)

// TestLockFile checks that a second LockFile on the same path waits until
// the first is released.
func TestLockFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := LockFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func())
	go func() {
		unlock2, err := LockFile(path)
		if err != nil {
			t.Error(err)
			unlock2 = func() {}
		}
		got <- unlock2
	}()
	select {
	case u := <-got:
		u()
		t.Fatal("a second LockFile did not wait for the first")
	case <-time.After(100 * time.Millisecond):
	}
	unlock()
	select {
	case u := <-got:
		u()
	case <-time.After(10 * time.Second):
		t.Fatal("a second LockFile did not get the lock after the first was released")
	}
}
