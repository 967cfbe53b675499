// Package mongo is the MongoDB backend of the store: a standalone server, a
// replica set, a sharded cluster or Atlas, and any MongoDB-wire server that
// evaluates the small subset of MongoDB it uses (FerretDB v1, which the tests
// run against; Amazon DocumentDB; Azure Cosmos DB for MongoDB).
//
// It needs neither multi-document transactions nor atomic conditional
// updates: FerretDB v1 applies an update (findAndModify included) by reading
// the matching documents and then writing them back by _id, so two
// "compare-and-swap" updates on the same version can both succeed. The only
// atomic operation it relies on is an insert refused by a unique _id.
//
// Five collections hold the data (docs/mongodb.md has the details):
//
//   - versions: every version, never changed once inserted except to mark
//     it superseded (and never deleted, but for those of an aborted
//     transaction). The current version of each resource carries its
//     search index entries, and the same entries encoded as arrays of
//     strings (multikey indexes make a token match one equality on an
//     array element).
//   - pending: one small marker per update whose predecessor may not be
//     marked superseded yet; normally empty.
//   - claims: one small document per conditional write in progress
//     ([Store.PutIf]); normally empty.
//   - txns and txnseq: the decision and the number of each transaction of
//     several writes ([Store.Transact]).
//
// See [Store.Put] and [Store.Transact] for the commit protocols and
// [Store.Search] for how searches run.
package mongo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fmtbank/cmts/store"
	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"
)

var _ store.Store = (*Store)(nil)

// DefaultServerSelectionTimeout bounds how long a call waits for a reachable
// server before it fails with store.ErrUnavailable, unless Options or the URI
// say otherwise. It is short on purpose: a request should fail fast while the
// database is gone, and the client reconnects by itself when it is back.
const DefaultServerSelectionTimeout = 2 * time.Second

// Collection names.
const (
	versionsColl = "versions"
	pendingColl  = "pending"
)

// finishTimeout bounds the work Put does after its commit point, when the
// caller's context is no longer consulted.
const finishTimeout = 10 * time.Second

// Options configure Open.
type Options struct {
	// URI is a MongoDB connection string: mongodb://host1,host2/?replicaSet=rs0
	// or mongodb+srv://cluster.example.net/. Required.
	URI string
	// Database is the database that holds the collections. Required.
	Database string
	// ServerSelectionTimeout overrides the URI's serverSelectionTimeoutMS;
	// when both are unset it is DefaultServerSelectionTimeout.
	ServerSelectionTimeout time.Duration
	// ClaimLease is how long a claim on a condition (Store.PutIf) outlives
	// a holder that died; a holder writes only within its first half.
	// Zero means DefaultClaimLease. Every instance on a database should
	// use the same.
	ClaimLease time.Duration
}

// Store is the MongoDB backend. It is safe for concurrent use, keeps no state
// that another instance needs, and may run as many instances side by side.
type Store struct {
	client   *mongodrv.Client
	versions *mongodrv.Collection
	pending  *mongodrv.Collection
	claims   *mongodrv.Collection
	txns     *mongodrv.Collection
	seqs     *mongodrv.Collection

	// lease is Options.ClaimLease; local queues this process's claimers
	// of one condition (see PutIf).
	lease time.Duration
	local keyLocks

	// idProbes makes Read find the current version by _id lookups alone
	// (readByProbes). Set for FerretDB v1, whose SQLite backend evaluates
	// every filter but one on _id alone in Go after decoding every document
	// of the collection (over half a second per 1,000 documents of a few
	// KB); an _id filter it hands to SQLite, ten times cheaper or more,
	// although it uses no index either (see readByProbes). A real MongoDB
	// serves the sorted query from an index.
	idProbes bool
	// clearOnCommit makes a transaction's roll-forward clear its marks
	// at once (see rollForward); not on FerretDB v1, where an update of
	// k documents costs k scans of the collection.
	clearOnCommit bool
	// cleaning is set while readers' deletion of aborted versions runs
	// (see outcomes).
	cleaning atomic.Bool

	// crashAfter names a step of Put ("check", "mark", "commit",
	// "supersede") after which Put returns errCrashed, leaving the database
	// as a writer that died there would. Only tests set it.
	crashAfter string
	// txnCrash names a step of Transact ("checked", "marked", "first",
	// "inserted", "decided", "superseded", "unmarked", "cleared") after
	// which it returns
	// errCrashed, leaving the database as a writer that died there would.
	// Only tests set it.
	txnCrash string
	// batchSize, when not 0, is how many writes of a transaction go in
	// one batch instead of txnBatch (tests make transactions of several
	// batches with it).
	batchSize int
}

// Open connects, checks the server answers (store.ErrUnavailable if it does
// not) and creates the indexes it needs; creating them again is a no-op, so
// every instance may do it at start-up.
//
// Unless the URI sets one, writes use write concern "majority": an
// acknowledged write survives the loss of the primary. Reads keep the
// server's default read concern ("local") and go to the primary, so every
// instance reads the writes acknowledged to any other; "majority" reads would
// need causally consistent sessions to guarantee that.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.URI == "" {
		return nil, errors.New("mongo: Options.URI is required")
	}
	if o.Database == "" {
		return nil, errors.New("mongo: Options.Database is required")
	}
	co := options.Client().ApplyURI(o.URI)
	switch {
	case o.ServerSelectionTimeout > 0:
		co.SetServerSelectionTimeout(o.ServerSelectionTimeout)
	case co.ServerSelectionTimeout == nil:
		co.SetServerSelectionTimeout(DefaultServerSelectionTimeout)
	}
	if co.ConnectTimeout == nil {
		// A server that accepts no connection should cost no more than a
		// server that cannot be selected.
		co.SetConnectTimeout(*co.ServerSelectionTimeout)
	}
	client, err := mongodrv.Connect(co)
	if err != nil {
		// Only option errors end up here: Connect does not dial.
		return nil, fmt.Errorf("mongo: %w", err)
	}
	// Primary reads, whatever the URI says: the precondition check in Put and
	// read-your-writes across instances depend on them.
	dbo := options.Database().SetReadPreference(readpref.Primary())
	if co.WriteConcern == nil {
		dbo.SetWriteConcern(writeconcern.Majority())
	}
	db := client.Database(o.Database, dbo)
	lease := o.ClaimLease
	if lease <= 0 {
		lease = DefaultClaimLease
	}
	s := &Store{client: client, versions: db.Collection(versionsColl), pending: db.Collection(pendingColl),
		claims: db.Collection(claimsColl), txns: db.Collection(txnsColl), seqs: db.Collection(seqColl), lease: lease}
	if err := s.Ping(ctx); err != nil {
		client.Disconnect(context.WithoutCancel(ctx))
		return nil, err
	}
	if err := s.createIndexes(ctx); err != nil {
		client.Disconnect(context.WithoutCancel(ctx))
		return nil, err
	}
	var info bson.M
	if err := db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err == nil {
		_, s.idProbes = info["ferretdbVersion"]
	}
	s.clearOnCommit = !s.idProbes
	s.recoverCommitted(ctx)
	return s, nil
}

// createIndexes creates every index the queries use. Names are fixed so that
// running it again (every start of every instance) finds them in place.
// They are created one per command: FerretDB v1 panics when one createIndexes
// command names several indexes that already exist.
func (s *Store) createIndexes(ctx context.Context) error {
	type key = bson.E
	asc := func(f string) key { return key{Key: f, Value: 1} }
	desc := func(f string) key { return key{Key: f, Value: -1} }
	for _, ix := range []struct {
		coll   *mongodrv.Collection
		name   string
		unique bool
		keys   bson.D
	}{
		// Read (the highest vid of a resource), instance history, and the
		// update that marks predecessors superseded. Unique like _id, which
		// encodes the same three fields.
		{s.versions, "type_id_vid", true, bson.D{asc("type"), asc("id"), asc("vid")}},
		// System and type history, in the history order.
		{s.versions, "tenant_lu", false, bson.D{asc("tenant"), desc("lu"), asc("type"), asc("id"), desc("vid")}},
		{s.versions, "tenant_type_lu", false, bson.D{asc("tenant"), asc("type"), desc("lu"), asc("id"), desc("vid")}},
		// Search without a filter, in the page order.
		{s.versions, "tenant_sup_type_id", false, bson.D{asc("tenant"), asc("sup"), asc("type"), asc("id"), desc("vid")}},
		// Multikey: one key per encoded index entry of a current version
		// (superseded versions have their index arrays removed). The rarer
		// forms (refi, refu) go without.
		{s.versions, "tenant_tok", false, bson.D{asc("tenant"), asc(fTok)}},
		{s.versions, "tenant_tokc", false, bson.D{asc("tenant"), asc(fTokCode)}},
		{s.versions, "tenant_ref", false, bson.D{asc("tenant"), asc(fRef)}},
		{s.versions, "tenant_refi", false, bson.D{asc("tenant"), asc(fRefID)}},
		{s.versions, "tenant_refu", false, bson.D{asc("tenant"), asc(fRefURL)}},
		{s.versions, "tenant_val", false, bson.D{asc("tenant"), asc(fValue)}},
		{s.versions, "tenant_code", false, bson.D{asc("tenant"), asc(fCode)}},
		{s.versions, "tenant_lo", false, bson.D{asc("tenant"), asc(fLow)}},
		{s.versions, "tenant_hi", false, bson.D{asc("tenant"), asc(fHigh)}},
		// The shared branch of the access filter ({reach: 1}: product
		// lots, a few percent of the resources); the tenant branch uses
		// the indexes above.
		{s.versions, "reach", false, bson.D{asc("reach")}},
		// The addressed branch ({to: tenant}: consultation Tasks).
		{s.versions, "to", false, bson.D{asc("to")}},
		{s.pending, "tenant", false, bson.D{asc("tenant")}},
		{s.pending, "type_id_vid", false, bson.D{asc("type"), asc("id"), asc("vid")}},
	} {
		o := options.Index().SetName(ix.name)
		if ix.unique {
			o.SetUnique(true)
		}
		m := mongodrv.IndexModel{Keys: ix.keys, Options: o}
		if _, err := ix.coll.Indexes().CreateOne(ctx, m); err != nil {
			return translate(ctx, "create index "+ix.coll.Name()+"."+ix.name, err)
		}
	}
	return nil
}

// Close disconnects; in-flight calls fail with store.ErrUnavailable.
func (s *Store) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.client.Disconnect(ctx); err != nil && !errors.Is(err, mongodrv.ErrClientDisconnected) {
		return fmt.Errorf("mongo: close: %v", err)
	}
	return nil
}

// Ping checks that the primary answers.
func (s *Store) Ping(ctx context.Context) error {
	return translate(ctx, "ping", s.client.Ping(ctx, readpref.Primary()))
}

// versionDoc is the stored form of a version, as read back (the index
// arrays stay on the server).
type versionDoc struct {
	Key     string `bson:"_id"`
	Tenant  string `bson:"tenant"`
	Type    string `bson:"type"`
	ID      string `bson:"id"`
	VID     int64  `bson:"vid"`
	LU      int64  `bson:"lu"`
	Deleted bool   `bson:"deleted"`
	Body    []byte `bson:"body"`
	// Idx holds the index entries of a current version, when projected.
	Idx entryList `bson:"idx,omitempty"`
	// Sup reports a superseded version, when projected.
	Sup    bool   `bson:"sup,omitempty"`
	Method string `bson:"method,omitempty"`
	// Reach is store.Version.Reach (absent: store.ReachTenant).
	Reach int32 `bson:"reach,omitempty"`
	// To is store.Version.Addressee (absent: none).
	To string `bson:"to,omitempty"`
	// Txn is the transaction that wrote the version, until it is rolled
	// forward; TxnExp is when it goes stale (see Store.Transact).
	Txn    string `bson:"txn,omitempty"`
	TxnExp int64  `bson:"txnexp,omitempty"`
	// TSeq and TTx replace Txn and TxnExp once the transaction is
	// committed and rolled forward: its number and id (see
	// Store.rollForward).
	TSeq int64  `bson:"tseq,omitempty"`
	TTx  string `bson:"ttx,omitempty"`
}

// versionProjection leaves the index arrays on the server.
var versionProjection = bson.D{
	{Key: "tenant", Value: 1}, {Key: "type", Value: 1}, {Key: "id", Value: 1}, {Key: "vid", Value: 1},
	{Key: "lu", Value: 1}, {Key: "deleted", Value: 1}, {Key: "body", Value: 1},
	{Key: "method", Value: 1}, {Key: "txn", Value: 1}, {Key: "txnexp", Value: 1}, {Key: "reach", Value: 1},
	{Key: "to", Value: 1}, {Key: "tseq", Value: 1}, {Key: "ttx", Value: 1},
}

// probeProjection is versionProjection with sup, for readByProbes.
var probeProjection = append(slices.Clone(versionProjection), bson.E{Key: "sup", Value: 1})

func (d *versionDoc) version() *store.Version {
	return &store.Version{
		Tenant: d.Tenant, Type: d.Type, ID: d.ID, VersionID: d.VID,
		LastUpdated: time.UnixMicro(d.LU).UTC(), Deleted: d.Deleted, Resource: d.Body, Method: d.Method,
		Reach: store.Reach(d.Reach), Addressee: d.To,
	}
}

// seenBy reports whether a sees d (see accessFilter).
func (d *versionDoc) seenBy(a store.Access) bool { return a.Sees(d.Tenant, store.Reach(d.Reach), d.To) }

// visibleOr is d if vis (what Store.visible kept of d) holds it, else nil.
func (d *versionDoc) visibleOr(vis []*versionDoc) *versionDoc {
	if len(vis) == 0 {
		return nil
	}
	return d
}

// versionKey is the _id of a versions (and pending) document. FHIR types and
// ids never contain "/", so the key is unambiguous.
func versionKey(typ, id string, vid int64) string {
	return typ + "/" + id + "/" + strconv.FormatInt(vid, 10)
}

// newVersionDoc is what versions holds for v until a later version
// supersedes it.
func newVersionDoc(v *store.Version) bson.D {
	d := bson.D{
		{Key: "_id", Value: versionKey(v.Type, v.ID, v.VersionID)},
		{Key: "tenant", Value: v.Tenant}, {Key: "type", Value: v.Type}, {Key: "id", Value: v.ID},
		{Key: "vid", Value: v.VersionID}, {Key: "lu", Value: v.LastUpdated.UnixMicro()},
		{Key: "deleted", Value: v.Deleted}, {Key: "body", Value: v.Resource},
		{Key: "sup", Value: false},
	}
	if v.Method != "" {
		d = append(d, bson.E{Key: "method", Value: v.Method})
	}
	d = append(d, reachField(v.Reach)...)
	d = append(d, toField(v.Addressee)...)
	if v.Deleted {
		return d
	}
	return append(d, indexFields(v.Index)...)
}

// Read returns the highest version of the resource: one indexed query, or on
// FerretDB v1 a few lookups by _id (readByProbes). Whether a sees it is
// the current version's reach (an earlier version's does not count), so
// it is decided once that version is known.
func (s *Store) Read(ctx context.Context, a store.Access, typ, id string) (*store.Version, error) {
	if s.idProbes {
		return s.readByProbes(ctx, a, typ, id)
	}
	// Two: the highest may belong to a transaction not committed (see
	// Transact), which keeps any other from writing above it.
	docs, err := s.find(ctx, "read "+typ+"/"+id, bson.D{{Key: "type", Value: typ}, {Key: "id", Value: id}},
		options.Find().SetSort(bson.D{{Key: "vid", Value: -1}}).SetLimit(2).SetProjection(versionProjection))
	if err == nil {
		docs, err = s.visible(ctx, docs, anyTime, nil)
	}
	if err != nil {
		return nil, err
	}
	if len(docs) == 0 || !docs[0].seenBy(a) {
		return nil, fmt.Errorf("mongo: read %s/%s: %w", typ, id, store.ErrNotFound)
	}
	return docs[0].version(), nil
}

// ReadVersion returns one version.
func (s *Store) ReadVersion(ctx context.Context, a store.Access, typ, id string, vid int64) (*store.Version, error) {
	d, err := s.byKey(ctx, versionKey(typ, id, vid))
	if err != nil {
		return nil, err
	}
	if vis, err := s.visible(ctx, []*versionDoc{d}, anyTime, nil); err != nil {
		return nil, err
	} else if !d.seenBy(a) || len(vis) == 0 {
		return nil, fmt.Errorf("mongo: read %s: %w", versionKey(typ, id, vid), store.ErrNotFound)
	}
	return d.version(), nil
}

// byKey reads one version by _id alone, the one filter FerretDB v1 hands to
// SQLite instead of evaluating it in Go.
func (s *Store) byKey(ctx context.Context, key string) (*versionDoc, error) {
	var d versionDoc
	err := s.versions.FindOne(ctx, bson.D{{Key: "_id", Value: key}}, options.FindOne().SetProjection(versionProjection)).Decode(&d)
	if err != nil {
		return nil, translate(ctx, "read "+key, err)
	}
	return &d, nil
}

// Put stores a version with neither a transaction nor a conditional update.
// Inserting the version under _id type/id/vid is the commit point: the unique
// _id lets exactly one writer of a version number in, and the document holds
// the whole version (body and index entries), so readers see all of it or
// nothing. What follows is bookkeeping that any process can finish. For an
// update to version N:
//
//  1. Check: version N-1 exists and belongs to the tenant (else
//     ErrConflict). Versions are never deleted, so if the insert of N then
//     succeeds, N-1 was the current version.
//  2. Mark: insert the pending marker type/id/N (a duplicate is fine).
//  3. Commit: insert version N with sup: false. A duplicate _id means another
//     writer won: ErrConflict, having written nothing but possibly the
//     marker, which then points at the winner's version.
//  4. Supersede: set sup: true on version N-1 and remove its index arrays;
//     Search reads only versions with sup: false.
//  5. Unmark: delete marker N.
//
// A create (PrevVersion 0) is step 3 alone: there is nothing to supersede,
// and the unique _id type/id/1 refuses an id that any tenant holds.
//
// A writer that dies after step 3 leaves versions N-1 and N with sup: false,
// and marker N. Read, ReadVersion and History do not look at sup, and Search
// first finishes steps 4 and 5 for every marker of its tenant whose version
// exists, so no reader sees N-1's index entries beside N. A writer that dies
// before step 3 leaves at most a marker without a version, which readers
// leave alone (its writer may yet commit) and the next writer of version N
// takes over.
//
// No document is ever updated except by step 4, which only ever sets the
// same values, so FerretDB's read-then-write updates cannot lose anything,
// and a step repeated late or twice changes nothing. Every step but the
// insert of the version filters on _id alone.
//
// Errors: ErrConflict when the precondition fails, ErrUnavailable when the
// database cannot be reached (if that happens during step 3 the write may or
// may not have been committed, as with any database reached over a network).
func (s *Store) Put(ctx context.Context, w store.Write) error {
	v := &w.Version
	if v.VersionID != w.PrevVersion+1 {
		return fmt.Errorf("mongo: version %d does not follow %d: %w", v.VersionID, w.PrevVersion, store.ErrConflict)
	}
	if v.Type == "" || v.ID == "" || strings.Contains(v.Type, "/") || strings.Contains(v.ID, "/") {
		return fmt.Errorf("mongo: invalid resource type or id %q/%q", v.Type, v.ID)
	}
	if w.PrevVersion == 0 {
		_, err := s.commit(ctx, v)
		return err
	}
	if err := s.check(ctx, w.PrevVersion, v); err != nil {
		return err
	}
	if s.crashAfter == "check" {
		return errCrashed
	}
	marked, err := s.mark(ctx, v)
	if err != nil {
		return err
	}
	if s.crashAfter == "mark" {
		return errCrashed
	}
	// Past the commit the caller must hear the outcome even if it gives up,
	// and the bookkeeping is repaired by readers and the next writer if it
	// fails, so its errors are dropped.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	freed, err := s.commit(ctx, v)
	if err != nil {
		if marked && errors.Is(err, store.ErrConflict) {
			// The marker is ours and points at the winner's version:
			// finishing it is harmless and leaves nothing behind, unless
			// the winner is a transaction's, not rolled forward (perhaps
			// not committed): that one removes the marker itself.
			if d, err := s.byKey(fctx, versionKey(v.Type, v.ID, v.VersionID)); err == nil && d.Txn == "" {
				_ = s.finish(fctx, v.Type, v.ID, v.VersionID)
			}
		}
		return err
	}
	if freed {
		// Freeing the number removed the aborted transaction's marker,
		// which stood for ours.
		_, _ = s.mark(fctx, v)
	}
	if s.crashAfter == "commit" {
		return errCrashed
	}
	err = s.supersede(fctx, v.Type, v.ID, v.VersionID)
	if s.crashAfter == "supersede" {
		return errCrashed
	}
	if err == nil {
		// The marker may go only once version N-1 is superseded.
		_ = s.unmark(fctx, v.Type, v.ID, v.VersionID)
	}
	return nil
}

// errCrashed is what Put returns when a test makes it stop half-way.
var errCrashed = errors.New("mongo: writer stopped by a test")

// maxClearWait bounds how long check waits for another process to clear
// the mark of a committed version (see Store.rollForward).
const maxClearWait = 10 * time.Second

// check is step 1 of Put and of Transact: version prev exists, is the
// tenant's and is committed. A version that still carries its
// transaction's mark is built on only once the mark is cleared (see
// Store.rollForward): check rolls the transaction forward, or waits a
// little for whoever is doing it, and otherwise reports a conflict.
func (s *Store) check(ctx context.Context, prev int64, v *store.Version) error {
	start, wait := time.Now(), time.Duration(0)
	var cerr error // the last roll-forward's failure
	for {
		d, err := s.byKey(ctx, versionKey(v.Type, v.ID, prev))
		switch {
		case errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("mongo: %s/%s has no version %d: %w", v.Type, v.ID, prev, store.ErrConflict)
		case err != nil:
			return err
		case d.Tenant != v.Tenant:
			return fmt.Errorf("mongo: %s/%s belongs to another tenant: %w", v.Type, v.ID, store.ErrConflict)
		case d.Txn == "":
			return nil
		case time.Since(start) > maxClearWait:
			return fmt.Errorf("mongo: %s/%s version %d is still being rolled forward (%v): %w", v.Type, v.ID, prev, cerr, store.ErrConflict)
		}
		out, err := s.outcomes(ctx, []*versionDoc{d})
		if err != nil {
			return err
		}
		o := out[d.Txn]
		if o.Outcome != committed {
			return fmt.Errorf("mongo: %s/%s version %d is not committed: %w", v.Type, v.ID, prev, store.ErrConflict)
		}
		if len(o.Keys) > 0 {
			// A failure (the claim held past half its lease on a slow
			// machine, say) is tried again.
			if cerr = s.rollForward(ctx, d.Txn, o.Seq, o.Keys, true); cerr != nil && ctx.Err() != nil {
				return cerr
			}
		}
		// Cleared now, unless another process holds the clear: look
		// again at once, then a little later each time.
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("mongo: waiting for %s/%s version %d to be rolled forward: %w", v.Type, v.ID, prev, context.Cause(ctx))
			case <-t.C:
			}
		}
		wait = min(max(2*wait, minClaimWait), maxClaimWait)
	}
}

// mark is step 2 of Put; it reports whether it inserted the marker.
func (s *Store) mark(ctx context.Context, v *store.Version) (bool, error) {
	_, err := s.pending.InsertOne(ctx, append(bson.D{
		{Key: "_id", Value: versionKey(v.Type, v.ID, v.VersionID)},
		{Key: "tenant", Value: v.Tenant}, {Key: "type", Value: v.Type}, {Key: "id", Value: v.ID}, {Key: "vid", Value: v.VersionID},
	}, append(reachField(v.Reach), toField(v.Addressee)...)...))
	if mongodrv.IsDuplicateKeyError(err) {
		return false, nil
	}
	return err == nil, translate(ctx, "mark "+versionKey(v.Type, v.ID, v.VersionID), err)
}

// commit is step 3 of Put: the commit point. freed reports that a version
// of an aborted transaction had the number and was removed.
func (s *Store) commit(ctx context.Context, v *store.Version) (freed bool, err error) {
	return s.insertVersion(ctx, versionKey(v.Type, v.ID, v.VersionID), newVersionDoc(v))
}

// finish is steps 4 and 5 of Put for version vid, which must exist.
func (s *Store) finish(ctx context.Context, typ, id string, vid int64) error {
	if err := s.supersede(ctx, typ, id, vid); err != nil {
		return err
	}
	return s.unmark(ctx, typ, id, vid)
}

// supersede is step 4 of Put: it marks the version before vid superseded.
// The versions before that one were superseded before their marker went.
func (s *Store) supersede(ctx context.Context, typ, id string, vid int64) error {
	// A version a transaction wrote loses its txn here: only committed
	// versions are superseded (see Store.rollForward).
	unset := bson.D{{Key: "txn", Value: ""}, {Key: "txnexp", Value: ""}}
	for _, f := range indexArrays {
		unset = append(unset, bson.E{Key: f, Value: ""})
	}
	key := versionKey(typ, id, vid-1)
	_, err := s.versions.UpdateOne(ctx, bson.D{{Key: "_id", Value: key}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "sup", Value: true}}}, {Key: "$unset", Value: unset}})
	return translate(ctx, "supersede "+key, err)
}

// unmark is step 5 of Put.
func (s *Store) unmark(ctx context.Context, typ, id string, vid int64) error {
	key := versionKey(typ, id, vid)
	_, err := s.pending.DeleteOne(ctx, bson.D{{Key: "_id", Value: key}})
	return translate(ctx, "unmark "+key, err)
}

// maxPending bounds the markers one Search finishes before it runs.
const maxPending = 1000

// finishPending finishes the updates of versions a sees that a writer
// committed but did not finish (a dead writer, or one still at work): the
// markers carry their version's tenant and reach, so one query on the
// (normally empty) pending collection finds them, for any access. Markers
// whose version does not exist are left alone: their writer may still
// commit. It returns the versions it found marked, a transaction's
// included (see Store.visible).
func (s *Store) finishPending(ctx context.Context, a store.Access) (*moving, error) {
	var all []struct {
		Type string `bson:"type"`
		ID   string `bson:"id"`
		VID  int64  `bson:"vid"`
		Txn  string `bson:"txn"`
	}
	filter := accessFilter(a)
	if a.Everyone {
		// Every marker: a version that became owner-only (a marker carries
		// the new reach) leaves its predecessor looking current to such a
		// reader until it is finished.
		filter = bson.D{}
	}
	cur, err := s.pending.Find(ctx, filter, options.Find().SetLimit(maxPending))
	if err == nil {
		err = cur.All(ctx, &all)
	}
	if err != nil {
		return nil, translate(ctx, "read pending", err)
	}
	mv := &moving{keys: map[string]bool{}, all: len(all) >= maxPending}
	// A transaction's markers are its own to finish (see Store.visible).
	marks := all[:0]
	for _, m := range all {
		mv.keys[versionKey(m.Type, m.ID, m.VID)] = true
		if m.Txn == "" {
			marks = append(marks, m)
		}
	}
	if len(marks) == 0 {
		return mv, nil
	}
	keys := bson.A{}
	for _, m := range marks {
		keys = append(keys, versionKey(m.Type, m.ID, m.VID))
	}
	var found []struct {
		Key string `bson:"_id"`
	}
	cur, err = s.versions.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err == nil {
		err = cur.All(ctx, &found)
	}
	if err != nil {
		return nil, translate(ctx, "read pending", err)
	}
	committed := map[string]bool{}
	for _, f := range found {
		committed[f.Key] = true
	}
	for _, m := range marks {
		if committed[versionKey(m.Type, m.ID, m.VID)] {
			if err := s.finish(ctx, m.Type, m.ID, m.VID); err != nil {
				return nil, err
			}
		}
	}
	return mv, nil
}

// historySort is the history order.
var historySort = bson.D{{Key: "lu", Value: -1}, {Key: "type", Value: 1}, {Key: "id", Value: 1}, {Key: "vid", Value: -1}}

// History pages through versions newest first.
func (s *Store) History(ctx context.Context, q store.HistoryQuery) (*store.HistoryPage, error) {
	count := q.Count
	if count <= 0 {
		count = 50
	}
	filter := bson.D{}
	if q.Type != "" {
		filter = append(filter, bson.E{Key: "type", Value: q.Type})
	}
	if q.ID != "" {
		filter = append(filter, bson.E{Key: "id", Value: q.ID})
	}
	if !q.Since.IsZero() {
		filter = append(filter, bson.E{Key: "lu", Value: bson.D{{Key: "$gte", Value: q.Since.UnixMicro()}}})
	}
	if a := q.After; a != nil {
		lu := a.LastUpdated.UnixMicro()
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "lu", Value: bson.D{{Key: "$lt", Value: lu}}}},
			bson.D{{Key: "lu", Value: lu}, {Key: "type", Value: bson.D{{Key: "$gt", Value: a.Type}}}},
			bson.D{{Key: "lu", Value: lu}, {Key: "type", Value: a.Type}, {Key: "id", Value: bson.D{{Key: "$gt", Value: a.ID}}}},
			bson.D{{Key: "lu", Value: lu}, {Key: "type", Value: a.Type}, {Key: "id", Value: a.ID}, {Key: "vid", Value: bson.D{{Key: "$lt", Value: a.VersionID}}}},
		}})
	}
	// Read before the query: see Store.visible.
	w, err := s.watermark(ctx)
	if err != nil {
		return nil, err
	}
	docs, err := s.findVisible(ctx, "history", w, withAccess(q.Access, filter), func(limit int64) *options.FindOptionsBuilder {
		return options.Find().SetSort(historySort).SetLimit(limit).SetProjection(versionProjection)
	}, int64(count+1), nil)
	if err != nil {
		return nil, err
	}
	page := &store.HistoryPage{}
	for i, d := range docs {
		if i == count {
			last := page.Versions[count-1]
			page.Next = &store.HistoryCursor{LastUpdated: last.LastUpdated, Type: last.Type, ID: last.ID, VersionID: last.VersionID}
			break
		}
		page.Versions = append(page.Versions, d.version())
	}
	return page, nil
}

// find runs a query on versions and decodes every document.
func (s *Store) find(ctx context.Context, what string, filter bson.D, opts *options.FindOptionsBuilder) ([]*versionDoc, error) {
	cur, err := s.versions.Find(ctx, filter, opts)
	if err != nil {
		return nil, translate(ctx, what, err)
	}
	var docs []*versionDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, translate(ctx, what, err)
	}
	return docs, nil
}

// findVisible is find with a limit, keeping the documents a reader with
// watermark w (and, reading current versions, mv) may see (Store.visible).
// When some are dropped at the limit it reads again, the limit raised by as
// many or doubled, so that the caller gets up to limit of them.
func (s *Store) findVisible(ctx context.Context, what string, w int64, filter bson.D, opts func(limit int64) *options.FindOptionsBuilder, limit int64, mv *moving) ([]*versionDoc, error) {
	for {
		docs, err := s.find(ctx, what, filter, opts(limit))
		if err != nil {
			return nil, err
		}
		vis, err := s.visible(ctx, docs, w, mv)
		if err != nil {
			return nil, err
		}
		if int64(len(docs)) < limit || len(vis) == len(docs) {
			return vis, nil
		}
		// At least double: a page of a transaction's undecided versions
		// often has more of them further on, and on FerretDB every query
		// costs a scan of the collection whatever its limit.
		limit += max(int64(len(docs)-len(vis)), limit)
	}
}

// unavailableCodes are server error codes that mean "not now, try later":
// no primary, shutting down, unreachable host, or a primary that stepped down.
var unavailableCodes = []int{
	6,     // HostUnreachable
	7,     // HostNotFound
	89,    // NetworkTimeout
	91,    // ShutdownInProgress
	189,   // PrimarySteppedDown
	9001,  // SocketException
	10107, // NotWritablePrimary
	11600, // InterruptedAtShutdown
	11602, // InterruptedDueToReplStateChange
	13435, // NotPrimaryNoSecondaryOk
	13436, // NotPrimaryOrSecondary
}

// translate turns a driver error into a store error; nothing above this
// package sees the driver's own. It is the only place that inspects them.
func translate(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, mongodrv.ErrNoDocuments) {
		return fmt.Errorf("mongo: %s: %w", what, store.ErrNotFound)
	}
	if mongodrv.IsDuplicateKeyError(err) {
		return fmt.Errorf("mongo: %s: already exists: %w", what, store.ErrConflict)
	}
	var sse topology.ServerSelectionError
	var se mongodrv.ServerError
	unavailable := errors.As(err, &sse) || mongodrv.IsNetworkError(err) || errors.Is(err, mongodrv.ErrClientDisconnected) ||
		errors.As(err, &se) && slices.ContainsFunc(unavailableCodes, se.HasErrorCode)
	cerr := ctx.Err()
	if dl, ok := ctx.Deadline(); cerr == nil && ok && time.Until(dl) <= time.Millisecond {
		// The driver refuses an operation whose deadline is about to pass
		// before the context says so: that is the caller's deadline too.
		cerr = context.DeadlineExceeded
	}
	if cerr != nil {
		// The caller gave up: say so, and whether the database was the cause.
		if unavailable {
			return fmt.Errorf("mongo: %s: %v: %w (%w)", what, err, store.ErrUnavailable, cerr)
		}
		return fmt.Errorf("mongo: %s: %v: %w", what, err, cerr)
	}
	if unavailable || mongodrv.IsTimeout(err) {
		return fmt.Errorf("mongo: %s: %v: %w", what, err, store.ErrUnavailable)
	}
	return fmt.Errorf("mongo: %s: %v", what, err)
}

// readByProbes finds the current version with lookups by _id alone (see
// Store.idProbes). FerretDB v1.24 over SQLite looks an _id up with
// "WHERE _ferretdb_sjson->'$._id' = ?", an expression its own _id index
// (on "_ferretdb_sjson->"_id"") does not match, so SQLite scans the table in
// insertion order, parsing each document's JSON, up to the match, and to the
// end when there is none: a lookup costs in proportion to the number of
// documents written before the one it finds (some 75 µs each, at a few KB,
// on the 2-core test machine), and a miss to the whole collection.
// So Read makes as few lookups as it can, and fetches the whole version in
// each so that the last needs no second one:
//
//   - A version that is not superseded (step 4 of Put marks version N-1 once
//     N is in) is the current one unless a writer has marked version N+1
//     (step 2), and the pending collection, nearly always empty, is cheap to
//     ask, even by a filter FerretDB evaluates in Go. The resource's markers
//     are read first, once: a marker gone by then was unmarked (step 5)
//     after its version's predecessor was superseded, so a version read as
//     not superseded after that was the current one when the markers were
//     read or later, and a Read never returns an older version than a Read
//     that finished before it. A resource with one version costs one lookup.
//   - Otherwise the numbers, contiguous from 1, are searched: doubling until
//     one is missing, then halving the gap between the highest found and the
//     lowest missing. A resource with N versions costs at most 2(log2(N)+1)
//     lookups, not N+1.
func (s *Store) readByProbes(ctx context.Context, a store.Access, typ, id string) (*store.Version, error) {
	var marks []struct {
		VID int64 `bson:"vid"`
	}
	cur, err := s.pending.Find(ctx, bson.D{{Key: "type", Value: typ}, {Key: "id", Value: id}},
		options.Find().SetProjection(bson.D{{Key: "vid", Value: 1}}))
	if err == nil {
		err = cur.All(ctx, &marks)
	}
	if err != nil {
		return nil, translate(ctx, "read "+typ+"/"+id, err)
	}
	marked := map[int64]bool{}
	for _, m := range marks {
		marked[m.VID] = true
	}
	var found *versionDoc // version lo
	// Versions 1..lo exist; hi does not (0 until one is found missing).
	lo, hi := int64(0), int64(0)
	for vid := int64(1); ; {
		var d versionDoc
		err := s.versions.FindOne(ctx, bson.D{{Key: "_id", Value: versionKey(typ, id, vid)}},
			options.FindOne().SetProjection(probeProjection)).Decode(&d)
		switch {
		case errors.Is(err, mongodrv.ErrNoDocuments):
			hi = vid
		case err != nil:
			return nil, translate(ctx, "read "+typ+"/"+id, err)
		case !d.Sup && !marked[vid+1]:
			lo, found, hi = vid, &d, vid+1
		default:
			lo, found = vid, &d
		}
		switch {
		case hi == lo+1:
			// The highest version may belong to a transaction not
			// committed, and then the one below it is the current one.
			for found != nil && found.Txn != "" {
				vis, err := s.visible(ctx, []*versionDoc{found}, anyTime, nil)
				if err != nil {
					return nil, err
				}
				if len(vis) > 0 || found.VID == 1 {
					found = found.visibleOr(vis)
					break
				}
				if found, err = s.byKey(ctx, versionKey(typ, id, found.VID-1)); err != nil {
					return nil, err
				}
			}
			if found == nil || !found.seenBy(a) {
				return nil, fmt.Errorf("mongo: read %s/%s: %w", typ, id, store.ErrNotFound)
			}
			return found.version(), nil
		case lo == vid && !found.Sup:
			// Marked: a writer of version vid+1 is at work, or died before
			// or after committing it.
			vid++
		case hi == 0:
			vid *= 2
		default:
			vid = lo + (hi-lo)/2
		}
	}
}
