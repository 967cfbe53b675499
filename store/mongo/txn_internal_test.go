package mongo

import (
	"errors"
	"fmt"
	"testing"

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
