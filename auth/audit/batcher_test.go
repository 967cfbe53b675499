package audit

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/sqlite"
)

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stored counts the AuditEvents of tenant in st.
func stored(t *testing.T, st store.Store, tenant string) int {
	t.Helper()
	page, err := st.Search(context.Background(), store.Query{Access: store.Tenant(tenant), Type: "AuditEvent", Count: 1, WantTotal: true})
	if err != nil {
		t.Fatal(err)
	}
	return page.Total
}

// fakeTimer hands the Batcher timers that fire when the test says.
type fakeTimer struct {
	mu     sync.Mutex
	asked  []time.Duration
	timers []chan time.Time
}

func (f *fakeTimer) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := make(chan time.Time, 1)
	f.asked = append(f.asked, d)
	f.timers = append(f.timers, c)
	return c
}

// fire fires every timer handed out; it reports how many.
func (f *fakeTimer) fire() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.timers {
		c <- time.Now()
	}
	n := len(f.timers)
	f.timers = nil
	return n
}

func (f *fakeTimer) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.asked)
}

// TestBatcherDelay: an event waits for the batch timer (at most 1 s), and
// is stored once it fires, without Close.
func TestBatcherDelay(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ft := &fakeTimer{}
	b, err := NewBatcher(BatcherOptions{Store: st, Maker: newMaker(t), After: ft.After})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	b.Add(goldenRecords["read"])
	b.Add(goldenRecords["search-type"])
	eventually(t, "batch timer started", func() bool { return ft.count() == 1 })
	if d := ft.asked[0]; d <= 0 || d > time.Second {
		t.Errorf("batch delay %v, want (0, 1s]", d)
	}
	if n := b.Written(); n != 0 {
		t.Fatalf("%d events written before the timer fired", n)
	}
	ft.fire()
	eventually(t, "two events written", func() bool { return b.Written() == 2 })
	if n := stored(t, st, "hospital-a") + stored(t, st, "nhc"); n != 2 {
		t.Errorf("%d events in the store, want 2", n)
	}
	// The next event starts a new timer.
	b.Add(goldenRecords["create"])
	eventually(t, "second batch timer", func() bool { return ft.count() == 2 })
	ft.fire()
	eventually(t, "third event written", func() bool { return b.Written() == 3 })
}

// TestBatcherRealClock: with the default options an event reaches the
// store on its own, well before a generous deadline.
func TestBatcherRealClock(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	b, err := NewBatcher(BatcherOptions{Store: st, Maker: newMaker(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	b.Add(goldenRecords["read"])
	eventually(t, "event stored", func() bool { return stored(t, st, "hospital-a") == 1 })
}

// TestBatcherClose: Close writes what is queued, however long its timer,
// and afterwards Add drops (counted).
func TestBatcherClose(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ft := &fakeTimer{} // never fired
	b, err := NewBatcher(BatcherOptions{Store: st, Maker: newMaker(t), After: ft.After, MaxBatch: 7})
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		b.Add(goldenRecords["read"])
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := stored(t, st, "hospital-a"); n != 20 {
		t.Errorf("%d events stored at Close, want 20", n)
	}
	b.Add(goldenRecords["read"])
	if b.Dropped() != 1 {
		t.Errorf("Dropped %d after an Add past Close, want 1", b.Dropped())
	}
	if err := b.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestBatcherConcurrent: many goroutines add at once (run with -race);
// every event is stored, in batches no larger than MaxBatch.
func TestBatcherConcurrent(t *testing.T) {
	t.Parallel()
	st := &counting{Store: newStore(t)}
	b, err := NewBatcher(BatcherOptions{Store: st, Maker: newMaker(t), MaxBatch: 50, MaxQueue: 64, Wait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 100
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				r := goldenRecords["read"]
				r.ID = fmt.Sprintf("p-%d-%d", i, j)
				b.Add(r)
			}
		}()
	}
	wg.Wait()
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := stored(t, st, "hospital-a"); n != workers*each || b.Written() != workers*each || b.Dropped() != 0 {
		t.Errorf("stored %d, written %d, dropped %d; want %d, %d, 0", n, b.Written(), b.Dropped(), workers*each, workers*each)
	}
	if st.max() > 50 {
		t.Errorf("a batch of %d events, MaxBatch 50", st.max())
	}
}

// counting records the size of the largest transaction.
type counting struct {
	store.Store
	mu      sync.Mutex
	biggest int
}

func (c *counting) Transact(ctx context.Context, conds []store.Query, decide func([][]*store.Version) ([]store.Write, error)) error {
	return c.Store.Transact(ctx, conds, func(m [][]*store.Version) ([]store.Write, error) {
		w, err := decide(m)
		c.mu.Lock()
		c.biggest = max(c.biggest, len(w))
		c.mu.Unlock()
		return w, err
	})
}

func (c *counting) max() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.biggest
}

// stalled is a store whose writes wait until released.
type stalled struct {
	store.Store
	release chan struct{}
}

func (s *stalled) Transact(ctx context.Context, conds []store.Query, decide func([][]*store.Version) ([]store.Write, error)) error {
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.Store.Transact(ctx, conds, decide)
}

// TestBatcherFull: when the store stalls and the queue fills, Add returns
// after Wait and the event is counted and logged as dropped; the rest is
// stored once the store comes back.
func TestBatcherFull(t *testing.T) {
	t.Parallel()
	st := &stalled{Store: newStore(t), release: make(chan struct{})}
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil))
	b, err := NewBatcher(BatcherOptions{Store: st, Maker: newMaker(t), Logger: logger,
		MaxBatch: 1, MaxQueue: 2, Wait: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// One batch is taken by the stalled write, two wait in the queue; the
	// others cannot wait longer than Wait.
	const adds = 10
	for range adds {
		start := time.Now()
		b.Add(goldenRecords["read"])
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("Add blocked %v", d)
		}
	}
	if d := b.Dropped(); d < adds-4 || d > adds-2 {
		t.Errorf("Dropped %d of %d with room for 2 to 4", d, adds)
	}
	logMu.Lock()
	text := logs.String()
	logMu.Unlock()
	if !strings.Contains(text, "level=WARN") || !strings.Contains(text, "audit events dropped") || !strings.Contains(text, "droppedTotal=") {
		t.Errorf("no warning logged for the dropped events:\n%s", text)
	}
	close(st.release)
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := int64(stored(t, st, "hospital-a")), adds-b.Dropped(); got != want || b.Written() != want {
		t.Errorf("stored %d, written %d; want %d (added %d, dropped %d)", got, b.Written(), want, adds, b.Dropped())
	}
}

// TestBatcherCloseDeadline: Close gives up when its context ends while the
// store is stalled; the events left are counted as dropped.
func TestBatcherCloseDeadline(t *testing.T) {
	t.Parallel()
	st := &stalled{Store: newStore(t), release: make(chan struct{})}
	b, err := NewBatcher(BatcherOptions{Store: st, Maker: newMaker(t),
		Logger: slog.New(slog.NewTextHandler(discard{}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	b.Add(goldenRecords["read"])
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := b.Close(ctx); err == nil {
		t.Fatal("Close returned nil with the store stalled")
	}
	eventually(t, "the event counted as dropped", func() bool { return b.Dropped() == 1 })
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkMakerWrite: the CPU cost of one event (build, JSON, index).
func BenchmarkMakerWrite(b *testing.B) {
	m := newMaker(b)
	r := goldenRecords["search-type"]
	now := time.Now()
	for b.Loop() {
		if _, err := m.Write(r, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBatcher: events stored on the embedded store, from Add to the
// end of Close (ns/op is per event stored).
func BenchmarkBatcher(b *testing.B) {
	st, err := sqlite.Open(context.Background(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	bt, err := NewBatcher(BatcherOptions{Store: st, Maker: newMaker(b), Wait: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	r := goldenRecords["read"]
	b.ResetTimer()
	for range b.N {
		bt.Add(r)
	}
	if err := bt.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if bt.Written() != int64(b.N) {
		b.Fatalf("%d written of %d (%d dropped)", bt.Written(), b.N, bt.Dropped())
	}
}
