package mongo

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/mongo/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// testLease is short so that the takeover tests wait little.
const testLease = 1500 * time.Millisecond

// openShared opens another store (another cmts instance) on database db.
func openShared(t *testing.T, srv *mongotest.Server, db string, lease time.Duration) *Store {
	t.Helper()
	s, err := Open(t.Context(), Options{URI: srv.URI(), Database: db, ClaimLease: lease})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var claimQuery = store.Query{Access: store.Tenant("h1"), Type: "Patient", Filter: store.Token{Param: "identifier", Code: "C"}, Count: 2}

// createIfNone creates Patient id unless the claim query matches; it
// reports whether it wrote.
func createIfNone(id string, wrote *bool) func([]*store.Version) (*store.Write, error) {
	return func(m []*store.Version) (*store.Write, error) {
		if len(m) > 0 {
			return nil, nil
		}
		*wrote = true
		return &store.Write{Version: store.Version{Tenant: "h1", Type: "Patient", ID: id, VersionID: 1, LastUpdated: t0,
			Resource: []byte(`{}`), Index: []store.IndexEntry{{Param: "identifier", Kind: store.KindToken, Code: "C"}}}}, nil
	}
}

// checkNoClaims checks that the claims collection is empty again.
func checkNoClaims(t *testing.T, s *Store) {
	t.Helper()
	n, err := s.claims.CountDocuments(t.Context(), bson.D{})
	if err != nil || n != 0 {
		t.Errorf("%d claims left, %v; want none", n, err)
	}
}

// TestClaimTakeover: an instance dies holding a claim. Until its lease
// runs out the condition stays held (another instance's conditional write
// waits, and gives up with its context); then the next writer takes the
// claim over and writes, and nothing is left behind.
func TestClaimTakeover(t *testing.T) {
	srv := mongotest.Start(t)
	db := srv.Database(t)
	dead, next := openShared(t, srv, db, testLease), openShared(t, srv, db, testLease)
	start := time.Now()
	if _, err := dead.claim(t.Context(), "h1", claimKey(claimQuery)); err != nil {
		t.Fatal(err)
	}
	// dead never releases: it crashed.

	ctx, cancel := context.WithTimeout(t.Context(), testLease/3)
	var wrote bool
	err := next.PutIf(ctx, claimQuery, createIfNone("early", &wrote))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || wrote {
		t.Fatalf("PutIf during the dead holder's lease = %v (wrote %v), want to wait and give up", err, wrote)
	}

	// Bounded, so that a claim never taken over fails rather than hangs.
	ctx, cancel = context.WithTimeout(t.Context(), 10*testLease)
	defer cancel()
	if err := next.PutIf(ctx, claimQuery, createIfNone("late", &wrote)); err != nil || !wrote {
		t.Fatalf("PutIf after the lease = %v (wrote %v)", err, wrote)
	}
	if took := time.Since(start); took < testLease {
		t.Errorf("took the claim over after %v, before the lease of %v ran out", took, testLease)
	}
	if _, err := next.Read(t.Context(), store.Tenant("h1"), "Patient", "late"); err != nil {
		t.Errorf("Read: %v", err)
	}
	checkNoClaims(t, next)
}

// TestClaimTakeoverStuckRemover: a taker died after it marked a stale claim
// for removal but before removing it. The marker's own lease runs out, and
// the next writer removes both and proceeds.
func TestClaimTakeoverStuckRemover(t *testing.T) {
	srv := mongotest.Start(t)
	s := openShared(t, srv, srv.Database(t), testLease)
	ctx, cancel := context.WithTimeout(t.Context(), 10*testLease)
	defer cancel()
	key := claimKey(claimQuery)
	past, soon := time.Now().Add(-time.Minute).UnixMilli(), time.Now().Add(testLease).UnixMilli()
	for _, d := range []bson.D{
		{{Key: "_id", Value: key}, {Key: "token", Value: "dead-holder"}, {Key: "exp", Value: past}},
		{{Key: "_id", Value: key + "!dead-holder"}, {Key: "token", Value: "dead-taker"}, {Key: "exp", Value: soon}},
	} {
		if _, err := s.claims.InsertOne(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	var wrote bool
	if err := s.PutIf(ctx, claimQuery, createIfNone("p1", &wrote)); err != nil || !wrote {
		t.Fatalf("PutIf = %v (wrote %v)", err, wrote)
	}
	if took := time.Since(start); took < testLease-200*time.Millisecond {
		t.Errorf("proceeded after %v, before the stuck remover's lease ran out", took)
	}
	checkNoClaims(t, s)
}

// TestClaimStalledHolder: a holder that is still deciding past half its
// lease writes nothing (another instance may take the claim over from
// then on) and says so; the claim is released for the next writer.
func TestClaimStalledHolder(t *testing.T) {
	srv := mongotest.Start(t)
	s := openShared(t, srv, srv.Database(t), testLease)
	ctx := t.Context()
	var wrote bool
	slow := createIfNone("slow", &wrote)
	err := s.PutIf(ctx, claimQuery, func(m []*store.Version) (*store.Write, error) {
		time.Sleep(testLease/2 + 100*time.Millisecond)
		return slow(m)
	})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("stalled PutIf = %v, want ErrUnavailable", err)
	}
	if _, err := s.Read(ctx, store.Tenant("h1"), "Patient", "slow"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the stalled holder wrote: Read = %v", err)
	}
	start := time.Now()
	wrote = false
	if err := s.PutIf(ctx, claimQuery, createIfNone("next", &wrote)); err != nil || !wrote {
		t.Fatalf("next PutIf = %v (wrote %v)", err, wrote)
	}
	if took := time.Since(start); took > testLease/2 {
		t.Errorf("the next writer waited %v: the stalled holder did not release its claim", took)
	}
	checkNoClaims(t, s)
}

// TestPutIfAcrossInstances races conditional creates and updates from
// several stores on one database (cmts instances behind a load balancer),
// so that they meet at the claim in the database, not in one process:
// one resource results.
func TestPutIfAcrossInstances(t *testing.T) {
	srv := mongotest.Start(t)
	db := srv.Database(t)
	const instances, perInstance = 3, 6
	var stores []*Store
	for range instances {
		stores = append(stores, openShared(t, srv, db, 0))
	}
	var wg sync.WaitGroup
	errs := make([]error, instances*perInstance)
	wrote := make([]bool, len(errs))
	start := make(chan struct{})
	for i := range errs {
		s := stores[i%instances]
		wg.Go(func() {
			<-start
			id := fmt.Sprintf("p%02d", i)
			if i%2 == 0 {
				errs[i] = s.PutIf(t.Context(), claimQuery, createIfNone(id, &wrote[i]))
				return
			}
			errs[i] = s.PutIf(t.Context(), claimQuery, func(m []*store.Version) (*store.Write, error) {
				if len(m) == 0 {
					return createIfNone(id, &wrote[i])(m)
				}
				wrote[i] = true
				cur := m[0]
				return &store.Write{PrevVersion: cur.VersionID, Version: store.Version{Tenant: "h1", Type: "Patient", ID: cur.ID,
					VersionID: cur.VersionID + 1, LastUpdated: t0, Resource: []byte(`{}`),
					Index: []store.IndexEntry{{Param: "identifier", Kind: store.KindToken, Code: "C"}}}}, nil
			})
		})
	}
	close(start)
	wg.Wait()
	writes := 0
	for i, err := range errs {
		if err != nil {
			t.Errorf("racer %d: %v", i, err)
		}
		if wrote[i] {
			writes++
		}
	}
	q := claimQuery
	q.Count = 100
	p, err := stores[0].Search(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Versions) != 1 {
		t.Fatalf("%d resources after the race, want 1", len(p.Versions))
	}
	if got := p.Versions[0].VersionID; got != int64(writes) {
		t.Errorf("the resource is at version %d, but %d racers wrote", got, writes)
	}
	checkNoClaims(t, stores[0])
}
