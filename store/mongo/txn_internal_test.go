package mongo

import (
	"errors"
	"fmt"
	"iter"
	"slices"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/mongo/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
)

// txnWrites are a transaction that updates p1 (version 1 exists) and
// creates p2 and p3.
func txnWrites(code string) []store.Write {
	var ws []store.Write
	for i, id := range []string{"p1", "p2", "p3"} {
		v := testVersion(1, code)
		v.ID = id
		prev := int64(0)
		if i == 0 {
			v.VersionID, prev = 2, 1
		}
		ws = append(ws, store.Write{PrevVersion: prev, Version: *v})
	}
	return ws
}

func transactWrites(ws []store.Write) func([][]*store.Version) ([]store.Write, error) {
	return func([][]*store.Version) ([]store.Write, error) { return ws, nil }
}

// checkRolledForward checks that no version carries a transaction's mark,
// that the versions of the transactions carry their stamp, and that no
// decision or marker is left.
func checkRolledForward(t *testing.T, s *Store, stamped int64) {
	t.Helper()
	ctx := t.Context()
	for _, c := range []struct {
		coll   *mongodrv.Collection
		filter bson.D
		want   int64
	}{
		{s.versions, bson.D{{Key: "txn", Value: bson.D{{Key: "$exists", Value: true}}}}, 0},
		{s.versions, bson.D{{Key: "tseq", Value: bson.D{{Key: "$gt", Value: 0}}}, {Key: "ttx", Value: bson.D{{Key: "$gt", Value: ""}}}}, stamped},
		{s.txns, bson.D{{Key: "outcome", Value: committed}}, 0},
		{s.pending, bson.D{}, 0},
	} {
		if n, err := c.coll.CountDocuments(ctx, c.filter); err != nil || n != c.want {
			t.Errorf("%s %v: %d documents, %v; want %d", c.coll.Name(), c.filter, n, err, c.want)
		}
	}
}

// TestTransactClears checks that a transaction rolled forward with its
// clear leaves no mark, decision or marker behind (so readers need no
// decision), that without it (FerretDB's way) the decision is marked done
// and the marks stay until a writer builds on one of the versions, which
// clears them, and that a transaction whose writer died after its
// decision is rolled forward by the next store to open.
func TestTransactClears(t *testing.T) {
	srv := mongotest.Start(t)
	for _, tc := range []struct {
		crash string
		clear bool
	}{{"", true}, {"", false}, {"decided", true}, {"superseded", false}, {"unmarked", true}} {
		t.Run(fmt.Sprintf("after %q, clear at once %v", tc.crash, tc.clear), func(t *testing.T) {
			ctx := t.Context()
			db := srv.Database(t)
			s, err := Open(ctx, Options{URI: srv.URI(), Database: db})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Put(ctx, store.Write{Version: *testVersion(1, "A")}); err != nil {
				t.Fatal(err)
			}
			s.txnCrash, s.clearOnCommit = tc.crash, tc.clear
			err = s.Transact(ctx, nil, transactWrites(txnWrites("B")))
			switch {
			case tc.crash == "" && err != nil, tc.crash != "" && !errors.Is(err, errCrashed):
				t.Fatalf("Transact: %v", err)
			case tc.crash == "" && tc.clear:
				checkRolledForward(t, s, 3)
			case tc.crash == "":
				if n, err := s.versions.CountDocuments(ctx, bson.D{{Key: "txn", Value: bson.D{{Key: "$gt", Value: ""}}}}); err != nil || n != 3 {
					t.Errorf("%d versions marked, %v; want 3", n, err)
				}
				if n, err := s.txns.CountDocuments(ctx, bson.D{{Key: "done", Value: true}}); err != nil || n != 1 {
					t.Errorf("%d decisions done, %v; want 1", n, err)
				}
			default:
				// A restarted store recovers it while opening.
				s2, err := Open(ctx, Options{URI: srv.URI(), Database: db})
				if err != nil {
					t.Fatal(err)
				}
				defer s2.Close()
				s = s2
				if n, err := s.txns.CountDocuments(ctx, bson.D{{Key: "done", Value: bson.D{{Key: "$ne", Value: true}}}}); err != nil || n != 0 {
					t.Errorf("%d decisions left unfinished after Open, %v; want 0", n, err)
				}
			}
			p, err := s.Search(ctx, store.Query{Access: store.Tenant("h1"), Filter: store.Token{Param: "identifier", Code: "B"}, Count: 10, WantTotal: true})
			if err != nil || p.Total != 3 || len(p.Versions) != 3 {
				t.Fatalf("Search = %+v, %v; want the three versions", p, err)
			}
			// Building on a version of the transaction clears its marks.
			if err := s.Put(ctx, store.Write{PrevVersion: 2, Version: *testVersion(3, "C")}); err != nil {
				t.Fatalf("update after the transaction: %v", err)
			}
			checkRolledForward(t, s, 3)
			// A search whose watermark is below the transaction's number
			// does not see it, by its stamp.
			docs, err := s.find(ctx, "test", bson.D{{Key: "tseq", Value: bson.D{{Key: "$gt", Value: 0}}}, {Key: "sup", Value: false}}, nil)
			if err != nil || len(docs) != 2 {
				t.Fatalf("current stamped versions: %d, %v; want 2", len(docs), err)
			}
			if vis, err := s.visible(ctx, docs, docs[0].TSeq-1, &moving{}); err != nil || len(vis) != 0 {
				t.Errorf("visible below the number = %d, %v; want none", len(vis), err)
			}
		})
	}
}

// TestForgottenDecision checks how a reader judges a marked version whose
// decision is gone: the transaction was rolled forward and its decision
// deleted after the reader read the version and before it read the
// decisions.
func TestForgottenDecision(t *testing.T) {
	srv := mongotest.Start(t)
	s := openTest(t, srv)
	s.clearOnCommit = true
	ctx := t.Context()
	if err := s.Put(ctx, store.Write{Version: *testVersion(1, "A")}); err != nil {
		t.Fatal(err)
	}
	ws := txnWrites("B")
	// Read as the reader did, while marked: stop the writer after its
	// decision, read, then finish the transaction.
	s.txnCrash = "decided"
	if err := s.Transact(ctx, nil, transactWrites(ws)); !errors.Is(err, errCrashed) {
		t.Fatalf("Transact: %v", err)
	}
	s.txnCrash = ""
	marked, err := s.find(ctx, "test", bson.D{{Key: "txn", Value: bson.D{{Key: "$gt", Value: ""}}}}, nil)
	if err != nil || len(marked) != 3 {
		t.Fatalf("marked versions: %d, %v", len(marked), err)
	}
	s.recoverCommitted(ctx)
	checkRolledForward(t, s, 3)
	stamped, err := s.find(ctx, "test", bson.D{{Key: "_id", Value: marked[0].Key}}, nil)
	if err != nil || len(stamped) != 1 {
		t.Fatal(err)
	}

	// All three read marked: the reader reads them again, finds the
	// stamps, and sees all three (the transaction committed before it).
	if vis, err := s.visible(ctx, marked, anyTime-1, &moving{}); err != nil || len(vis) != 3 {
		t.Errorf("visible(three marked) = %d, %v; want three", len(vis), err)
	}
	// One read after the clear tells the others are committed.
	mixed := append([]*versionDoc{stamped[0]}, marked[1:]...)
	if vis, err := s.visible(ctx, mixed, anyTime-1, &moving{}); err != nil || len(vis) != 3 {
		t.Errorf("visible(one stamped, two marked) = %d, %v; want three", len(vis), err)
	}
	// So does a reader of one resource.
	if vis, err := s.visible(ctx, marked[:1], anyTime, nil); err != nil || len(vis) != 1 {
		t.Errorf("visible(one marked, read again) = %d, %v; want it", len(vis), err)
	}
	// The decision stays gone: no one took the transaction for aborted.
	if n, err := s.txns.CountDocuments(ctx, bson.D{}); err != nil || n != 0 {
		t.Errorf("txns holds %d decisions, %v; want none", n, err)
	}
}

// TestTransactSeqBatches checks a transaction stored in several batches
// (steps 1 to 3 for each as its writes come): committed whole under one
// number, or, when a write of a later batch fails (an error yielded, a
// stale update, a resource written twice), left out whole, with nothing of
// the batches before it behind.
func TestTransactSeqBatches(t *testing.T) {
	srv := mongotest.Start(t)
	// writes updates p1 and p2 (version 1 of each exists), each first in
	// a batch of two, and creates n1..n5 around them.
	writes := func(code string) []store.Write {
		var ws []store.Write
		for _, id := range []string{"n1", "p1", "n2", "n3", "p2", "n4", "n5"} {
			v := testVersion(1, code)
			v.ID = id
			prev := int64(0)
			if id[0] == 'p' {
				v.VersionID, prev = 2, 1
			}
			ws = append(ws, store.Write{PrevVersion: prev, Version: *v})
		}
		return ws
	}
	for _, tc := range []struct {
		name string
		// spoil changes the writes (nil: none), or yields an error at
		// index at (>= 0).
		spoil   func([]store.Write) []store.Write
		at      int
		wantErr error
	}{
		{name: "committed", at: -1},
		{name: "error yielded in the third batch", at: 5, wantErr: errBuild},
		{name: "stale update in the third batch", at: -1, wantErr: store.ErrConflict, spoil: func(ws []store.Write) []store.Write {
			ws[4].PrevVersion, ws[4].Version.VersionID = 2, 3
			return ws
		}},
		{name: "resource twice, in the fourth batch", at: -1, wantErr: store.ErrConflict, spoil: func(ws []store.Write) []store.Write {
			ws[6].Version.ID = "n1"
			return ws
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			s, err := Open(ctx, Options{URI: srv.URI(), Database: srv.Database(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for _, id := range []string{"p1", "p2"} {
				v := testVersion(1, "A")
				v.ID = id
				if err := s.Put(ctx, store.Write{Version: *v}); err != nil {
					t.Fatal(err)
				}
			}
			// Cleared at once, so that the versions carry their number.
			s.batchSize, s.clearOnCommit = 2, true
			ws := writes("B")
			if tc.spoil != nil {
				ws = tc.spoil(ws)
			}
			pulled := 0
			err = s.TransactSeq(ctx, nil, func([][]*store.Version) iter.Seq2[store.Write, error] {
				return func(yield func(store.Write, error) bool) {
					for i, w := range ws {
						pulled++
						if i == tc.at {
							yield(store.Write{}, errBuild)
							return
						}
						if !yield(w, nil) {
							return
						}
					}
				}
			})
			if !errors.Is(err, tc.wantErr) || (err != nil) != (tc.wantErr != nil) {
				t.Fatalf("TransactSeq = %v, want %v", err, tc.wantErr)
			}
			p, err := s.Search(ctx, store.Query{Access: store.Tenant("h1"), Filter: store.Token{Param: "identifier", Code: "B"}, Count: 10, WantTotal: true})
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantErr == nil {
				if p.Total != 7 {
					t.Fatalf("found %d versions of the transaction; want 7", p.Total)
				}
				checkRolledForward(t, s, 7)
				var stamps []int64
				docs, err := s.find(ctx, "test", bson.D{{Key: "ttx", Value: bson.D{{Key: "$gt", Value: ""}}}}, nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range docs {
					stamps = append(stamps, d.TSeq)
				}
				if len(stamps) != 7 || slices.Min(stamps) != slices.Max(stamps) {
					t.Errorf("transaction numbers of its versions = %v; want one number for all 7", stamps)
				}
				return
			}
			if p.Total != 0 {
				t.Errorf("found %d versions of the failed transaction; want none", p.Total)
			}
			if pulled < 5 {
				t.Fatalf("only %d writes were pulled: the failure came before the later batches", pulled)
			}
			// Nothing of the batches stored before the failure is left:
			// the two versions 1, no marker, no marked version.
			if n, err := s.versions.CountDocuments(ctx, bson.D{}); err != nil || n != 2 {
				t.Errorf("%d versions stored, %v; want the 2 from before", n, err)
			}
			if n, err := s.pending.CountDocuments(ctx, bson.D{}); err != nil || n != 0 {
				t.Errorf("%d markers left, %v; want none", n, err)
			}
			for _, id := range []string{"p1", "p2"} {
				if v, err := s.Read(ctx, store.Tenant("h1"), "Patient", id); err != nil || v.VersionID != 1 {
					t.Errorf("Read %s = %+v, %v; want version 1", id, v, err)
				}
			}
		})
	}
}

var errBuild = errors.New("entry 6 does not build")

// TestTransactSeqKeptAlive checks that a transaction whose later batches
// come after its lease has run out (their writes take long to build) is
// not judged stale by a reader that meets its versions meanwhile: its
// live document says its writer is at work (txnWriter.keepAlive). Without
// it the reader would decide it aborted, and the writer would answer
// ErrConflict.
func TestTransactSeqKeptAlive(t *testing.T) {
	srv := mongotest.Start(t)
	ctx := t.Context()
	// Each batch of two takes 300 ms to build, well within half the
	// lease, and all of them together 1.5 leases.
	const lease = 2 * time.Second
	s, err := Open(ctx, Options{URI: srv.URI(), Database: srv.Database(t), ClaimLease: lease})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.batchSize = 2
	search := func() int {
		t.Helper()
		p, err := s.Search(ctx, store.Query{Access: store.Tenant("h1"), Filter: store.Token{Param: "identifier", Code: "B"}, Count: 10, WantTotal: true})
		if err != nil {
			t.Fatal(err)
		}
		return p.Total
	}
	err = s.TransactSeq(ctx, nil, func([][]*store.Version) iter.Seq2[store.Write, error] {
		return func(yield func(store.Write, error) bool) {
			for i := range 22 {
				if i >= 2 {
					// The first batch is in; a reader meets the versions
					// while the later ones are built.
					time.Sleep(150 * time.Millisecond)
					if n := search(); n != 0 {
						t.Errorf("a reader found %d versions of the transaction before its decision", n)
					}
				}
				v := testVersion(1, "B")
				v.ID = fmt.Sprintf("k%d", i)
				if !yield(store.Write{Version: *v}, nil) {
					return
				}
			}
		}
	})
	if err != nil {
		t.Fatalf("TransactSeq = %v; want it committed", err)
	}
	if n := search(); n != 22 {
		t.Errorf("found %d versions of the transaction; want 22", n)
	}
	if n, err := s.txns.CountDocuments(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$regex", Value: "^" + livePrefix}}}}); err != nil || n != 0 {
		t.Errorf("%d live documents left, %v; want none", n, err)
	}
}
