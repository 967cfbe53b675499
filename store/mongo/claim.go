package mongo

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/fmtbank/cmts/store"
	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
)

// DefaultClaimLease is how long a claim on a condition (see Store.PutIf)
// outlives a holder that died, unless Options say otherwise.
const DefaultClaimLease = 30 * time.Second

// claimsColl holds the claims PutIf serialises on: normally one small
// document per conditional write in progress.
const claimsColl = "claims"

// How long a claimer waits between two looks at a claim another process
// holds: doubling from the first to the last, with jitter.
const (
	minClaimWait = 2 * time.Millisecond
	maxClaimWait = 100 * time.Millisecond
)

// claimDoc is a claim, or a removal marker (see Store.remove).
type claimDoc struct {
	Key   string `bson:"_id"`
	Token string `bson:"token"`
	// Exp is when the lease ends, in Unix milliseconds by the holder's clock.
	Exp int64 `bson:"exp"`
}

// claimKey is the _id of the claim on q's condition. Hashed: the condition
// holds search values (identifiers, names) and can be long.
func claimKey(q store.Query) string {
	sum := sha256.Sum256([]byte(q.ConditionKey()))
	return hex.EncodeToString(sum[:])
}

// PutIf serialises on a claim: a document of the claims collection whose
// _id is a hash of q's condition (store.Query.ConditionKey), inserted
// before the search and removed after the write, the unique _id letting
// one holder in at a time, across every instance on the database.
// Claimers in this process queue in memory first, so that only one of them
// at a time asks the database; those of other processes look again, a
// little later each time (2 to 100 ms), until the claim is free.
//
// A claim carries a lease (Options.ClaimLease). A holder writes only
// within the first half of it, and fails with store.ErrUnavailable,
// writing nothing, past that; another claimer takes a claim over only
// once the whole lease has passed by its own clock. So a holder that died
// holds up its condition for one lease, and two holders never overlap
// unless the instances' clocks disagree by more than half the lease, or a
// holder stalls for over half of it between its last look at the clock and
// its write reaching the database. See docs/mongodb.md.
func (s *Store) PutIf(ctx context.Context, q store.Query, decide func([]*store.Version) (*store.Write, error)) error {
	c, err := s.claim(ctx, q.Access.Key(), claimKey(q))
	if err != nil {
		return err
	}
	defer c.release()
	page, err := s.Search(ctx, q)
	if err != nil {
		return err
	}
	w, err := decide(page.Versions)
	if err != nil || w == nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	return s.Put(ctx, *w)
}

// claim is a set of claims held together.
type claim struct {
	s     *Store
	token string
	// start is when the first claim's lease began (just before its insert).
	start  time.Time
	held   []string
	unlock func()
}

// claim takes the claims of keys, in sorted order so that two claimers of
// overlapping sets cannot each wait for the other. It waits as long as ctx
// allows for claims that others hold.
func (s *Store) claim(ctx context.Context, tenant string, keys ...string) (*claim, error) {
	keys = slices.Compact(slices.Sorted(slices.Values(keys)))
	unlock, err := s.local.lock(ctx, keys)
	if err != nil {
		return nil, err
	}
	c := &claim{s: s, token: newToken(), unlock: unlock}
	for _, k := range keys {
		if err := s.acquire(ctx, tenant, k, c); err != nil {
			c.release()
			return nil, err
		}
	}
	return c, nil
}

// acquire inserts the claim key for c, waiting while another holder's lease
// runs and taking the claim over once it has run out.
func (s *Store) acquire(ctx context.Context, tenant, key string, c *claim) error {
	wait := minClaimWait
	for {
		at := time.Now()
		_, err := s.claims.InsertOne(ctx, bson.D{
			{Key: "_id", Value: key}, {Key: "token", Value: c.token},
			{Key: "exp", Value: at.Add(s.lease).UnixMilli()}, {Key: "tenant", Value: tenant},
		})
		if err == nil {
			if len(c.held) == 0 {
				c.start = at
			}
			c.held = append(c.held, key)
			return nil
		}
		if !mongodrv.IsDuplicateKeyError(err) {
			return translate(ctx, "claim", err)
		}
		var d claimDoc
		err = s.claims.FindOne(ctx, bson.D{{Key: "_id", Value: key}}).Decode(&d)
		switch {
		case errors.Is(err, mongodrv.ErrNoDocuments):
			continue // released meanwhile
		case err != nil:
			return translate(ctx, "claim", err)
		case time.Now().UnixMilli() > d.Exp:
			// Its holder died, or stalled past its lease and will not write.
			removed, err := s.remove(ctx, key, d.Token)
			if err != nil {
				return err
			}
			if removed {
				continue
			}
		}
		t := time.NewTimer(wait/2 + mrand.N(wait/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("mongo: waiting for a claim: %w", context.Cause(ctx))
		case <-t.C:
		}
		wait = min(2*wait, maxClaimWait)
	}
}

// remove deletes the claims document id, which carries token tok, unless
// someone else is deleting it; it reports whether it did. Deleting takes
// care: FerretDB v1 deletes by reading the matching documents and then
// deleting their _ids, so if two processes deleted one claim at once, one
// of them could delete, by the same _id, the claim a third inserted in
// between. So whoever deletes a document first inserts the marker
// id+"!"+tok, which only one can do; a marker whose lease has run out
// (its inserter died between the two steps) is removed the same way.
func (s *Store) remove(ctx context.Context, id, tok string) (bool, error) {
	marker, mine := id+"!"+tok, newToken()
	for {
		_, err := s.claims.InsertOne(ctx, bson.D{
			{Key: "_id", Value: marker}, {Key: "token", Value: mine},
			{Key: "exp", Value: time.Now().Add(s.lease).UnixMilli()},
		})
		if err == nil {
			break
		}
		if !mongodrv.IsDuplicateKeyError(err) {
			return false, translate(ctx, "remove claim", err)
		}
		var m claimDoc
		err = s.claims.FindOne(ctx, bson.D{{Key: "_id", Value: marker}}).Decode(&m)
		switch {
		case errors.Is(err, mongodrv.ErrNoDocuments):
			continue // its remover finished: the claim is gone, or nearly
		case err != nil:
			return false, translate(ctx, "remove claim", err)
		case time.Now().UnixMilli() <= m.Exp:
			return false, nil // another remover is at work
		}
		if removed, err := s.remove(ctx, marker, m.Token); err != nil || !removed {
			return false, err
		}
	}
	// While the marker stands no one else deletes id, and id cannot be
	// inserted again until it is deleted, so this delete meets tok's claim
	// or nothing.
	if _, err := s.claims.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "token", Value: tok}}); err != nil {
		return false, translate(ctx, "remove claim", err)
	}
	_, err := s.claims.DeleteOne(ctx, bson.D{{Key: "_id", Value: marker}, {Key: "token", Value: mine}})
	return true, translate(ctx, "remove claim", err)
}

// check reports whether c may still write: within the first half of its
// lease (store.ErrUnavailable otherwise).
func (c *claim) check() error {
	if d := time.Since(c.start); d >= c.s.lease/2 {
		return fmt.Errorf("mongo: the claim on the condition was held %v, over half its lease, before the write; nothing was written: %w",
			d.Round(time.Millisecond), store.ErrUnavailable)
	}
	return nil
}

// release gives the claims up, even when the caller's context has ended.
// Within the first half of the lease no one else deletes them, so a delete
// by _id and token is safe; later they are removed with a marker. A
// release that fails leaves the claim to expire.
func (c *claim) release() {
	ctx, cancel := context.WithTimeout(context.Background(), finishTimeout)
	defer cancel()
	for _, k := range c.held {
		if time.Since(c.start) < c.s.lease/2 {
			_, _ = c.s.claims.DeleteOne(ctx, bson.D{{Key: "_id", Value: k}, {Key: "token", Value: c.token}})
		} else {
			_, _ = c.s.remove(ctx, k, c.token)
		}
	}
	c.held = nil
	c.unlock()
}

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// keyLocks queues the claimers of one key within this process. It only
// saves the database from being asked in vain: the claims themselves are
// what excludes other processes.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	ch   chan struct{} // full while held
	refs int           // holder and waiters
}

// lock takes every key in order (waiting as long as ctx allows) and returns
// the function that gives them back.
func (l *keyLocks) lock(ctx context.Context, keys []string) (func(), error) {
	var held []string
	unlock := func() {
		for _, k := range held {
			l.done(k, true)
		}
	}
	for _, k := range keys {
		l.mu.Lock()
		if l.m == nil {
			l.m = map[string]*keyLock{}
		}
		e := l.m[k]
		if e == nil {
			e = &keyLock{ch: make(chan struct{}, 1)}
			l.m[k] = e
		}
		e.refs++
		l.mu.Unlock()
		select {
		case e.ch <- struct{}{}:
			held = append(held, k)
		case <-ctx.Done():
			l.done(k, false)
			unlock()
			return nil, fmt.Errorf("mongo: waiting for a claim: %w", context.Cause(ctx))
		}
	}
	return unlock, nil
}

func (l *keyLocks) done(k string, held bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.m[k]
	if held {
		<-e.ch
	}
	if e.refs--; e.refs == 0 {
		delete(l.m, k)
	}
}
