package audit

import (
	"context"
	"errors"
	"fmt"
	"github.com/fmtbank/cmts/fhir"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fmtbank/cmts/store"
)

// Store is what the Batcher needs of the store; store.Store has it.
type Store interface {
	Transact(ctx context.Context, conds []store.Query, decide func(matches [][]*store.Version) ([]store.Write, error)) error
}

// Defaults of BatcherOptions.
const (
	DefaultDelay    = 500 * time.Millisecond
	DefaultMaxBatch = 500
	DefaultMaxQueue = 10_000
	DefaultWait     = 100 * time.Millisecond
)

// BatcherOptions configure a Batcher. Store and Maker are required.
type BatcherOptions struct {
	Store Store
	Maker *Maker
	// Logger receives warnings about events that could not be stored
	// (default slog.Default()).
	Logger *slog.Logger
	// Delay is the longest an event waits in memory before the write of its
	// batch starts (default DefaultDelay; at most 1 s): with the write
	// itself, an event is stored about a second after Add at the latest.
	Delay time.Duration
	// MaxBatch bounds the events of one store transaction (default
	// DefaultMaxBatch); a full batch is written at once.
	MaxBatch int
	// MaxQueue bounds the events held in memory (default DefaultMaxQueue).
	MaxQueue int
	// Wait is how long Add waits for room when the queue is full (default
	// DefaultWait) before it drops the event, counting and logging it.
	Wait time.Duration
	// Now is the clock that stamps each batch's meta.lastUpdated (default
	// time.Now).
	Now func() time.Time
	// After is the timer of Delay (default time.After); tests replace it.
	After func(time.Duration) <-chan time.Time
}

// Batcher writes the AuditEvents of reads (and of anything not audited in
// the same transaction as its data) in batches through the store.
//
// Add never blocks a request for longer than Wait. An event is written at
// most Delay after it was added (plus the time of the write), or when
// MaxBatch events are waiting, and at the latest by Close. Memory is
// bounded by MaxQueue events: when the store cannot keep up for that long,
// Add waits up to Wait for room and then drops the event. A dropped event is
// never silent: it is counted (Dropped) and logged as a warning (at most
// once a second, with the running count). That trade keeps reads
// available when the audit store falls behind; writes never depend on it,
// as their events are stored with the data (Hook).
type Batcher struct {
	opts  BatcherOptions
	log   *slog.Logger
	queue chan Record

	// mu orders Add against Close: Add holds it for reading while it
	// enqueues, Close takes it to set closed, so no event is enqueued after
	// the loop's last drain.
	mu     sync.RWMutex
	closed bool

	closing  chan struct{}
	closeCtx context.Context
	done     chan struct{}
	once     sync.Once

	written, dropped atomic.Int64
	lastWarn         atomic.Int64 // unix nanoseconds of the last drop warning
	warned           atomic.Int64 // the dropped count that warning gave
}

// NewBatcher checks the options and starts the batcher's writer.
func NewBatcher(opts BatcherOptions) (*Batcher, error) {
	switch {
	case opts.Store == nil:
		return nil, errors.New("audit: no store")
	case opts.Maker == nil:
		return nil, errors.New("audit: no maker")
	}
	if err := opts.Maker.check(); err != nil {
		return nil, err
	}
	if opts.Delay <= 0 || opts.Delay > time.Second {
		opts.Delay = DefaultDelay
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = DefaultMaxQueue
	}
	if opts.Wait <= 0 {
		opts.Wait = DefaultWait
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.After == nil {
		opts.After = time.After
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	b := &Batcher{opts: opts, log: log, queue: make(chan Record, opts.MaxQueue),
		closing: make(chan struct{}), done: make(chan struct{})}
	go b.run()
	return b, nil
}

// Add queues r's AuditEvent to be written. It returns at once while the
// queue has room; otherwise it waits up to Wait, then drops the event
// (counted and logged). After Close every event is dropped so.
func (b *Batcher) Add(r Record) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		b.drop(1, "the audit trail is closed")
		return
	}
	select {
	case b.queue <- r:
		return
	default:
	}
	t := time.NewTimer(b.opts.Wait)
	defer t.Stop()
	select {
	case b.queue <- r:
	case <-t.C:
		b.drop(1, "the audit queue is full")
	}
}

// Close stops accepting events and writes every event queued, waiting until
// they are stored or ctx ends (then what is left is dropped, counted and
// logged, and ctx's error returned). It is safe to call more than once.
func (b *Batcher) Close(ctx context.Context) error {
	b.once.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.closeCtx = ctx
		b.mu.Unlock()
		close(b.closing)
	})
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Written returns the number of events stored so far.
func (b *Batcher) Written() int64 { return b.written.Load() }

// Dropped returns the number of events that were not stored (queue full,
// closed, or the store refused them).
func (b *Batcher) Dropped() int64 { return b.dropped.Load() }

// drop counts n lost events and warns, at most once a second.
func (b *Batcher) drop(n int, why string) {
	total := b.dropped.Add(int64(n))
	now := time.Now().UnixNano()
	last := b.lastWarn.Load()
	if now-last < int64(time.Second) || !b.lastWarn.CompareAndSwap(last, now) {
		return
	}
	b.warned.Store(total)
	b.log.Warn("audit events dropped", "reason", why, "dropped", n, "droppedTotal", total)
}

// run collects events into batches and writes them: when the first event of
// a batch has waited Delay, when the batch is full, and on Close.
func (b *Batcher) run() {
	defer close(b.done)
	batch := make([]Record, 0, b.opts.MaxBatch)
	var timer <-chan time.Time
	flush := func(ctx context.Context) {
		b.write(ctx, batch)
		batch, timer = batch[:0], nil
	}
	for {
		select {
		case r := <-b.queue:
			if len(batch) == 0 {
				timer = b.opts.After(b.opts.Delay)
			}
			if batch = append(batch, r); len(batch) >= b.opts.MaxBatch {
				flush(context.Background())
			}
		case <-timer:
			flush(context.Background())
		case <-b.closing:
			// Add can no longer enqueue: what is queued now is the rest.
			ctx := b.closeCtx
			for {
				select {
				case r := <-b.queue:
					if batch = append(batch, r); len(batch) >= b.opts.MaxBatch {
						flush(ctx)
					}
					continue
				default:
				}
				break
			}
			if len(batch) > 0 {
				flush(ctx)
			}
			// Drops after the last warning are reported here, so that none
			// goes unlogged.
			if d := b.dropped.Load(); d > b.warned.Load() {
				b.log.Warn("audit events dropped", "reason", "closed with events dropped since the last warning", "droppedTotal", d)
			}
			return
		}
	}
}

// Attempts and pauses of a batch write that fails.
var retryPauses = []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second}

// write stores one batch in one transaction, retrying a failure a few times
// (the store may be briefly unavailable); what cannot be stored is dropped,
// counted and logged.
func (b *Batcher) write(ctx context.Context, batch []Record) {
	now := b.opts.Now()
	writes := make([]store.Write, 0, len(batch))
	for _, r := range batch {
		w, err := b.opts.Maker.Write(r, now)
		if err != nil {
			b.log.Error("audit event not made", "err", err)
			b.drop(1, "the event could not be made")
			continue
		}
		writes = append(writes, w)
	}
	if len(writes) == 0 {
		return
	}
	var err error
	for attempt := 0; ; attempt++ {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = b.opts.Store.Transact(wctx, nil, func([][]*store.Version) ([]store.Write, error) { return writes, nil })
		cancel()
		// A conflict means the ids are taken: a retry cannot help (and after
		// an ambiguous failure, the first attempt may have stored them).
		if err == nil || errors.Is(err, store.ErrConflict) || attempt == len(retryPauses) || ctx.Err() != nil {
			break
		}
		select {
		case <-time.After(retryPauses[attempt]):
		case <-ctx.Done():
		}
	}
	if err != nil {
		b.log.Error("audit events not stored", "events", len(writes), "err", err)
		b.drop(len(writes), fmt.Sprintf("the store refused the batch: %v", err))
		return
	}
	b.written.Add(int64(len(writes)))
}

var _ fhir.AuditTrail = (*Batcher)(nil)

// Requested implements fhir.AuditTrail: the request is recorded with the
// next batch.
func (b *Batcher) Requested(_ context.Context, r fhir.AuditRequest) {
	b.Add(Record{Interaction: r.Action, Principal: r.Principal, Remote: r.Remote, RequestID: r.RequestID,
		Time: r.Time, Status: r.Status, Type: r.Type, ID: r.ID, Version: r.Version, Operation: r.Operation, Query: r.Query})
}
