package sqlite

import (
	"context"
	"errors"
	"iter"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store"
)

// TestGroupCommitFailsAlone checks that one failing commit in a group
// (written first without savepoints, then again with them) fails alone:
// the others in its transaction are stored, its own writes are not.
func TestGroupCommitFailsAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now().UTC().Truncate(time.Microsecond)
	version := func(id string, vid int64) store.Version {
		return store.Version{Tenant: "t1", Type: "Patient", ID: id, VersionID: vid, LastUpdated: now,
			Resource: []byte(`{"resourceType":"Patient","id":"` + id + `"}`),
			Index:    []store.IndexEntry{{Param: "_id", Kind: store.KindToken, Code: id}}}
	}
	if err := s.Put(ctx, store.Write{Version: version("old", 1)}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		commits [][]store.Write
		fails   []bool
	}{
		{"all succeed", [][]store.Write{
			{{Version: version("a1", 1)}},
			{{Version: version("a2", 1)}, {Version: version("a3", 1)}},
		}, []bool{false, false}},
		{"one stale", [][]store.Write{
			{{Version: version("b1", 1)}},
			// The second write is stale: its first must not stay either.
			{{Version: version("b2", 1)}, {PrevVersion: 4, Version: version("old", 5)}},
			{{Version: version("b3", 1)}},
		}, []bool{false, true, false}},
		{"first fails", [][]store.Write{
			{{Version: version("old", 1)}}, // exists already
			{{Version: version("c1", 1)}},
		}, []bool{true, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			batch := make([]*queuedPut, len(tc.commits))
			for i, ws := range tc.commits {
				batch[i] = &queuedPut{ws: ws, transact: len(ws) > 1, done: make(chan error, 1)}
			}
			s.commitGroupTx(ctx, batch)
			for i, r := range batch {
				err := <-r.done
				if tc.fails[i] != (err != nil) || (err != nil && !errors.Is(err, store.ErrConflict)) {
					t.Errorf("commit %d: %v, want failure %v (a conflict)", i, err, tc.fails[i])
				}
				for _, w := range r.ws {
					if w.Version.ID == "old" {
						continue
					}
					_, err := s.Read(ctx, store.Tenant("t1"), "Patient", w.Version.ID)
					if stored := err == nil; stored == tc.fails[i] {
						t.Errorf("commit %d: %s stored %v, want %v (%v)", i, w.Version.ID, stored, !tc.fails[i], err)
					}
				}
			}
			v, err := s.Read(ctx, store.Tenant("t1"), "Patient", "old")
			if err != nil || v.VersionID != 1 {
				t.Errorf("Patient/old: %v, %v; want version 1", v, err)
			}
		})
	}
}

// TestTransactSeq checks that the writes of TransactSeq are stored all or
// none: an error yielded part-way, or a resource yielded twice, stores
// nothing.
func TestTransactSeq(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now().UTC().Truncate(time.Microsecond)
	write := func(id string) store.Write {
		return store.Write{Version: store.Version{Tenant: "t1", Type: "Patient", ID: id, VersionID: 1, LastUpdated: now,
			Resource: []byte(`{"resourceType":"Patient","id":"` + id + `"}`),
			Index:    []store.IndexEntry{{Param: "_id", Kind: store.KindToken, Code: id}}}}
	}
	errStop := errors.New("entry 2 is invalid")
	for _, tc := range []struct {
		name    string
		ids     []string
		failAt  int // yield errStop instead of this write (-1: none)
		wantErr error
	}{
		{"all stored", []string{"a1", "a2", "a3"}, -1, nil},
		{"an error part-way", []string{"b1", "b2", "b3"}, 2, errStop},
		{"the same resource twice", []string{"c1", "c2", "c1"}, -1, store.ErrConflict},
		{"none", nil, -1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pulled := 0
			err := s.TransactSeq(ctx, nil, func([][]*store.Version) iter.Seq2[store.Write, error] {
				return func(yield func(store.Write, error) bool) {
					for i, id := range tc.ids {
						pulled++
						if i == tc.failAt {
							yield(store.Write{}, errStop)
							return
						}
						if !yield(write(id), nil) {
							return
						}
					}
				}
			})
			if !errors.Is(err, tc.wantErr) || (err != nil) != (tc.wantErr != nil) {
				t.Fatalf("TransactSeq: %v, want %v", err, tc.wantErr)
			}
			if pulled != len(tc.ids) && tc.failAt < 0 && tc.wantErr == nil {
				t.Errorf("pulled %d writes of %d", pulled, len(tc.ids))
			}
			for _, id := range tc.ids {
				_, err := s.Read(ctx, store.Tenant("t1"), "Patient", id)
				if stored := err == nil; stored != (tc.wantErr == nil) {
					t.Errorf("Patient/%s stored %v, want %v (%v)", id, stored, tc.wantErr == nil, err)
				}
			}
		})
	}
}
