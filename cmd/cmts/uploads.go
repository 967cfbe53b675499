package main

import (
	"io"
	"net/http"
	"sync"
	"time"
)

// uploads tracks the requests whose bodies are still arriving, so that a
// shutdown gives them a short grace to finish and then cuts them off, instead
// of waiting out its drain period for a client that sends a byte a second.
// Requests that have their whole body (or none) finish as usual.
type uploads struct {
	mu      sync.Mutex
	closing bool
	// deadline is when bodies still arriving are cut off (once closing).
	deadline time.Time
	active   map[*http.ResponseController]struct{}
}

func newUploads() *uploads { return &uploads{active: map[*http.ResponseController]struct{}{}} }

// wrap tracks each request body of next until it is read to the end or the
// request ends.
func (u *uploads) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		u.mu.Lock()
		u.active[rc] = struct{}{}
		closing, deadline := u.closing, u.deadline
		u.mu.Unlock()
		if closing {
			_ = rc.SetReadDeadline(deadline)
		}
		done := func() {
			u.mu.Lock()
			delete(u.active, rc)
			u.mu.Unlock()
		}
		defer done()
		r.Body = &trackedBody{ReadCloser: r.Body, done: done}
		next.ServeHTTP(w, r)
	})
}

// cutOff makes every body still arriving after grace fail its next read,
// bodies that start arriving later included.
func (u *uploads) cutOff(grace time.Duration) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.closing, u.deadline = true, time.Now().Add(grace)
	for rc := range u.active {
		_ = rc.SetReadDeadline(u.deadline)
	}
}

type trackedBody struct {
	io.ReadCloser
	done func()
	once sync.Once
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		// The whole body is here: a shutdown lets this request finish.
		b.once.Do(b.done)
	}
	return n, err
}
