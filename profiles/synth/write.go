package synth

import (
	"context"
	"errors"
	"fmt"
	"github.com/fmtbank/cmts/auth/policy"
	"runtime"

	"github.com/fmtbank/cmts/store"
)

// Indexer computes a resource's search index entries; search.Engine
// implements it.
type Indexer interface {
	Entries(resourceType string, body []byte) ([]store.IndexEntry, error)
}

// Writer is what Write needs of a store; store.Store has it.
type Writer interface {
	Transact(ctx context.Context, conds []store.Query, decide func(matches [][]*store.Version) ([]store.Write, error)) error
}

// WriteOptions configure Write. Store and Indexer are required.
type WriteOptions struct {
	Store   Writer
	Indexer Indexer
	// Batch is the number of versions per store transaction (default 2000).
	Batch int
	// Workers render and index batches in parallel (default GOMAXPROCS).
	Workers int
	// Progress, when set, is called after each committed batch with the
	// versions written so far and the total.
	Progress func(done, total int)
}

// ErrNotEmpty: the store already holds resources with the registry's ids
// (a registry generated before); nothing of the failing batch was stored.
var ErrNotEmpty = errors.New("synth: the store already holds some of the registry's resources; generate into an empty store")

// Write stores every version of the registry, in order, Batch versions per
// atomic store transaction, with the index entries Indexer computes (as a
// REST write computes them). Rendering and indexing run on Workers
// goroutines ahead of the single writer. The store must not hold the
// registry's ids yet (ErrNotEmpty).
func (g *Registry) Write(ctx context.Context, o WriteOptions) error {
	if o.Store == nil || o.Indexer == nil {
		return errors.New("synth: Write needs a store and an indexer")
	}
	if o.Batch <= 0 {
		o.Batch = 2000
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := g.Batches(o.Batch)
	type result struct {
		writes []store.Write
		err    error
	}
	// One channel per batch, filled by the workers, drained in order: at
	// most Workers+1 batches are in memory at once.
	out := make([]chan result, len(batches))
	for i := range out {
		out[i] = make(chan result, 1)
	}
	jobs := make(chan int)
	sem := make(chan struct{}, o.Workers+1)
	go func() {
		defer close(jobs)
		for i := range batches {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	for range o.Workers {
		go func() {
			for i := range jobs {
				ws, err := g.render(batches[i], o.Indexer)
				out[i] <- result{ws, err}
			}
		}()
	}
	done := 0
	for i := range batches {
		var r result
		select {
		case r = <-out[i]:
		case <-ctx.Done():
			return ctx.Err()
		}
		if r.err != nil {
			return r.err
		}
		err := o.Store.Transact(ctx, nil, func([][]*store.Version) ([]store.Write, error) { return r.writes, nil })
		if errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("%w (%v)", ErrNotEmpty, err)
		}
		if err != nil {
			return err
		}
		<-sem
		done += len(r.writes)
		if o.Progress != nil {
			o.Progress(done, g.Len())
		}
	}
	return nil
}

// render makes the store writes of versions [b[0], b[1]).
func (g *Registry) render(b [2]int, ix Indexer) ([]store.Write, error) {
	ws := make([]store.Write, 0, b[1]-b[0])
	for k := b[0]; k < b[1]; k++ {
		r := g.Resource(k)
		entries, err := ix.Entries(r.Type, r.Body)
		if err != nil {
			return nil, fmt.Errorf("synth: indexing %s/%s: %w", r.Type, r.ID, err)
		}
		v := store.Version{Tenant: r.Tenant, Type: r.Type, ID: r.ID, VersionID: r.Version, LastUpdated: r.LastUpdated,
			Resource: r.Body, Index: entries, Method: "PUT"}
		// Who may read it beyond its tenant, by the access policy's rule
		// (product lots shared, donors kept in their bank).
		v.Reach = policy.Reach(&v)
		ws = append(ws, store.Write{PrevVersion: r.Version - 1, Version: v})
	}
	return ws, nil
}
