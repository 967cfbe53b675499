package mongo

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"strings"
	"time"

	"github.com/fmtbank/cmts/store"
	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// txnsColl holds one decision document per transaction of several writes
// (see Store.Transact).
const txnsColl = "txns"

// Outcomes of a transaction, as its decision document records them.
const (
	committed = "committed"
	aborted   = "aborted"
)

// decisionDoc decides a transaction. Keys lists the versions a committed
// one wrote, so that whoever finds it not rolled forward can finish it.
type decisionDoc struct {
	ID      string   `bson:"_id"`
	Outcome string   `bson:"outcome"`
	Seq     int64    `bson:"seq,omitempty"`
	Keys    []string `bson:"keys,omitempty"`
	// Done: rolled forward but for the clear (see Store.rollForward).
	Done bool `bson:"done,omitempty"`
	// Until is, on a transaction's live document (liveKey) instead of its
	// decision, until when its writer is known to be at work on it.
	Until int64 `bson:"until,omitempty"`
}

// liveKey is the _id, in txns, of the live document of the transaction
// txn (see txnWriter.keepAlive).
func liveKey(txn string) string { return livePrefix + txn }

const livePrefix = "live/"

// seqColl numbers transactions in the order their versions were all
// inserted: one document {_id: n, txn} per transaction about to commit.
const seqColl = "txnseq"

// anyTime is the watermark of a reader of one resource: every committed
// transaction counts (see Store.visible).
const anyTime = int64(math.MaxInt64)

// nextSeq takes the next transaction number, after every version of txn is
// inserted: one above the highest taken, the unique _id letting one taker
// in. A reader that reads the highest number before its query (watermark)
// has met, in its query, every version of every transaction numbered up
// to it.
func (s *Store) nextSeq(ctx context.Context, txn string) (int64, error) {
	for {
		n, err := s.watermark(ctx)
		if err != nil {
			return 0, err
		}
		_, err = s.seqs.InsertOne(ctx, bson.D{{Key: "_id", Value: n + 1}, {Key: "txn", Value: txn}})
		if err == nil {
			if (n+1)%seqKeep == 0 {
				// Only the highest numbers are ever read.
				_, _ = s.seqs.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$lte", Value: n + 1 - seqKeep}}}})
			}
			return n + 1, nil
		}
		if !mongodrv.IsDuplicateKeyError(err) {
			return 0, translate(ctx, "number transaction", err)
		}
	}
}

// seqKeep is how many transaction numbers are kept below the highest.
const seqKeep = 1000

// watermark returns the highest transaction number taken (0: none).
func (s *Store) watermark(ctx context.Context) (int64, error) {
	var last struct {
		N int64 `bson:"_id"`
	}
	err := s.seqs.FindOne(ctx, bson.D{}, options.FindOne().SetSort(bson.D{{Key: "_id", Value: -1}})).Decode(&last)
	if err != nil && !errors.Is(err, mongodrv.ErrNoDocuments) {
		return 0, translate(ctx, "read transaction numbers", err)
	}
	return last.N, nil
}

// Transact commits several writes as one without multi-document
// transactions, by a commit record in the manner of Percolator (see
// docs/mongodb.md for the protocol and why it holds):
//
//  1. Check: every update's previous version is visible (committed) and
//     the tenant's (else ErrConflict).
//  2. Mark: a pending marker per update, carrying the transaction id.
//  3. Insert every version under its unique _id type/id/vid, carrying the
//     transaction id (txn) and when it goes stale (txnexp). A duplicate
//     _id is a conflict with another writer, unless the document there
//     belongs to a transaction that aborted or went stale, which is then
//     aborted, removed and the insert tried again.
//  4. Number: take the next transaction number (nextSeq), which orders
//     transactions by when all their versions were in place.
//  5. Decide: insert the decision document (_id the transaction id,
//     outcome committed, the number). This is the commit point: the
//     unique _id lets one decision in, the writer's or that of a recovery
//     that found the transaction stale (outcome aborted).
//  6. Roll forward: supersede every update's predecessor, then delete the
//     markers. A version keeps its txn until it is superseded itself
//     (see rollForward), and the decision stays.
//
// Readers treat a version that carries txn as absent unless its
// transaction's decision says committed, and, for readers of several
// resources, its number is at most the one they read before their query
// (see visible). An aborted transaction's versions
// are deleted, by its writer or by whoever finds them, so their version
// numbers are free again.
//
// Steps 1 to 3 run for each batch of writes in turn (TransactSeq), all of
// them before step 4; a transaction of several batches keeps itself from
// going stale while they come (txnWriter.keepAlive).
//
// A single write is stored by Put, which is atomic by itself.
func (s *Store) Transact(ctx context.Context, conds []store.Query, decide func([][]*store.Version) ([]store.Write, error)) error {
	return s.TransactSeq(ctx, conds, func(matches [][]*store.Version) iter.Seq2[store.Write, error] {
		return store.Writes(decide(matches))
	})
}

// TransactSeq is Transact for writes made one by one (bundle.SeqStore):
// steps 1 to 3 run for each batch of writes (txnBatch) as they come, so
// that the store holds one batch and the keys of those before it rather
// than every write of a large transaction; steps 4 to 6 follow the last.
// Nothing of it is visible before step 5, however many batches are in.
func (s *Store) TransactSeq(ctx context.Context, conds []store.Query, writes func(matches [][]*store.Version) iter.Seq2[store.Write, error]) (err error) {
	var c *claim
	crashed := false
	matches := make([][]*store.Version, len(conds))
	if len(conds) > 0 {
		keys := make([]string, len(conds))
		for i, q := range conds {
			keys[i] = claimKey(q)
		}
		if c, err = s.claim(ctx, conds[0].Access.Key(), keys...); err != nil {
			return err
		}
		defer func() {
			if !crashed {
				c.release()
			}
		}()
		for i, q := range conds {
			page, err := s.Search(ctx, q)
			if err != nil {
				return err
			}
			matches[i] = page.Versions
		}
	}
	next, stop := iter.Pull2(writes(matches))
	defer stop()
	size := txnBatch
	if s.batchSize > 0 {
		size = s.batchSize
	}
	batch, more, err := nextBatch(next, nil, size)
	if err != nil || len(batch) == 0 {
		return err
	}
	if len(batch) == 1 && !more && s.txnCrash == "" {
		if err := checkWrites(batch, map[string]bool{}); err != nil {
			return err
		}
		if c != nil {
			if err := c.check(); err != nil {
				return err
			}
		}
		return s.Put(ctx, batch[0])
	}
	t := &txnWriter{s: s, txn: newToken(), seen: map[string]bool{}}
	for {
		if err := t.add(ctx, batch); err != nil {
			crashed = errors.Is(err, errCrashed)
			if !crashed {
				t.abort(ctx)
			}
			return err
		}
		if !more {
			break
		}
		if batch, more, err = nextBatch(next, batch[:0], size); err != nil {
			t.abort(ctx)
			return err
		}
		if err := t.keepAlive(ctx); err != nil {
			t.abort(ctx)
			return err
		}
	}
	err = t.commit(ctx, c)
	crashed = errors.Is(err, errCrashed)
	return err
}

// txnBatch is how many writes of a transaction are checked, marked and
// inserted together (steps 1 to 3), unless txnBatchBytes of resources
// come first.
const (
	txnBatch      = 256
	txnBatchBytes = 4 << 20
)

// nextBatch appends to batch the next writes of next, up to n (or
// txnBatchBytes); more reports that some may follow.
func nextBatch(next func() (store.Write, error, bool), batch []store.Write, n int) (_ []store.Write, more bool, err error) {
	size := 0
	for len(batch) < n && size < txnBatchBytes {
		w, err, ok := next()
		if !ok {
			return batch, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		batch = append(batch, w)
		size += len(w.Version.Resource)
	}
	return batch, true, nil
}

// checkWrites refuses a write that does not follow its previous version,
// has an unusable type or id, or writes a resource seen already in the
// transaction.
func checkWrites(ws []store.Write, seen map[string]bool) error {
	for _, w := range ws {
		v := &w.Version
		if v.VersionID != w.PrevVersion+1 {
			return fmt.Errorf("mongo: version %d does not follow %d: %w", v.VersionID, w.PrevVersion, store.ErrConflict)
		}
		if v.Type == "" || v.ID == "" || strings.Contains(v.Type, "/") || strings.Contains(v.ID, "/") {
			return fmt.Errorf("mongo: invalid resource type or id %q/%q", v.Type, v.ID)
		}
		if seen[v.Type+"/"+v.ID] {
			return fmt.Errorf("mongo: %s/%s written twice in one transaction: %w", v.Type, v.ID, store.ErrConflict)
		}
		seen[v.Type+"/"+v.ID] = true
	}
	return nil
}

// txnWriter is one transaction of Transact in progress: what it keeps of
// the batches it has inserted.
type txnWriter struct {
	s   *Store
	txn string
	// exp is when the transaction goes stale, set at its first batch.
	exp int64
	// keys are the versions inserted, marks the markers of the updates
	// among them (small: no resource).
	keys  []string
	marks []any
	seen  map[string]bool
	// freed: an insert freed a number of an aborted transaction, deleting
	// its marker, which may have stood for one of ours.
	freed bool
	// until is when the transaction goes stale: exp, or later once its
	// live document says so (live).
	until int64
	live  bool
}

// keepAlive keeps a transaction of several batches from going stale while
// they come: building the writes of the later ones takes time that a
// lease counted from the first insert did not allow for. Past half of
// it, the transaction's live document in txns (liveKey) says until when
// its writer is at work, and readers consult it before they judge the
// transaction stale (outcomes). Safety does not depend on it: a reader
// that judged the transaction stale all the same decided it aborted, and
// then the writer's decision fails. The versions keep their txnexp: on
// FerretDB an update of each would scan the collection.
func (t *txnWriter) keepAlive(ctx context.Context) error {
	s, now := t.s, time.Now()
	if now.UnixMilli() < t.until-s.lease.Milliseconds()/2 {
		return nil
	}
	until := now.Add(s.lease).UnixMilli()
	var err error
	if t.live {
		_, err = s.txns.UpdateOne(ctx, bson.D{{Key: "_id", Value: liveKey(t.txn)}}, bson.D{{Key: "$set", Value: bson.D{{Key: "until", Value: until}}}})
	} else {
		_, err = s.txns.InsertOne(ctx, bson.D{{Key: "_id", Value: liveKey(t.txn)}, {Key: "until", Value: until}})
	}
	if err != nil {
		return translate(ctx, "keep transaction "+t.txn+" alive", err)
	}
	t.live, t.until = true, until
	return nil
}

// forgetLive deletes the live document once the transaction is decided
// (errors dropped: Open deletes those left).
func (t *txnWriter) forgetLive(ctx context.Context) {
	if t.live {
		_, _ = t.s.txns.DeleteOne(ctx, bson.D{{Key: "_id", Value: liveKey(t.txn)}})
		t.live = false
	}
}

// add runs steps 1 to 3 for a batch of writes.
func (t *txnWriter) add(ctx context.Context, ws []store.Write) error {
	s := t.s
	if err := checkWrites(ws, t.seen); err != nil {
		return err
	}
	first := t.exp == 0
	if first {
		t.exp = time.Now().Add(s.lease).UnixMilli()
		t.until = t.exp
	}
	keys := make([]string, len(ws))
	var marks []any
	for i, w := range ws {
		v := &w.Version
		keys[i] = versionKey(v.Type, v.ID, v.VersionID)
		if w.PrevVersion == 0 {
			continue
		}
		if err := s.check(ctx, w.PrevVersion, v); err != nil {
			return err
		}
		marks = append(marks, append(bson.D{
			{Key: "_id", Value: keys[i]}, {Key: "tenant", Value: v.Tenant}, {Key: "type", Value: v.Type},
			{Key: "id", Value: v.ID}, {Key: "vid", Value: v.VersionID}, {Key: "txn", Value: t.txn}, {Key: "txnexp", Value: t.exp},
		}, append(reachField(v.Reach), toField(v.Addressee)...)...))
	}
	if s.txnCrash == "checked" {
		return errCrashed
	}
	// From here an abort deletes what of keys carries the transaction's
	// mark, markers and versions.
	t.keys = append(t.keys, keys...)
	if len(marks) > 0 {
		// A duplicate marker is another writer's of the same version, which
		// the insert of the version settles.
		if _, err := s.pending.InsertMany(ctx, marks, options.InsertMany().SetOrdered(false)); err != nil && !onlyDuplicates(err) {
			return translate(ctx, "mark", err)
		}
		t.marks = append(t.marks, marks...)
	}
	if s.txnCrash == "marked" {
		return errCrashed
	}
	docs := make([]any, len(ws))
	for i, w := range ws {
		docs[i] = append(newVersionDoc(&w.Version), bson.E{Key: "txn", Value: t.txn}, bson.E{Key: "txnexp", Value: t.exp})
	}
	freed, err := s.insertVersions(ctx, keys, docs, first)
	t.freed = t.freed || freed
	return err
}

// commit runs steps 4 to 6 once every batch is inserted.
func (t *txnWriter) commit(ctx context.Context, c *claim) error {
	s, txn, keys := t.s, t.txn, t.keys
	if t.freed && len(t.marks) > 0 {
		// Freeing a version of an aborted transaction deleted its marker,
		// which may have stood for ours; readers rely on the markers of
		// a transaction's updates standing from before it takes its
		// number until its roll-forward (see Store.visible).
		if _, err := s.pending.InsertMany(ctx, t.marks, options.InsertMany().SetOrdered(false)); err != nil && !onlyDuplicates(err) {
			t.abort(ctx)
			return translate(ctx, "mark", err)
		}
	}
	if s.txnCrash == "inserted" {
		return errCrashed
	}
	if c != nil {
		if err := c.check(); err != nil {
			t.abort(ctx)
			return err
		}
	}
	seq, err := s.nextSeq(ctx, txn)
	if err != nil {
		t.abort(ctx)
		return err
	}
	outcome, err := s.decide(ctx, txn, committed, keys, seq)
	if err != nil {
		// The decision may or may not have been written.
		return err
	}
	t.forgetLive(ctx)
	if outcome != committed {
		t.abort(ctx)
		return fmt.Errorf("mongo: the transaction went stale before it was committed and was aborted by a recovery: %w", store.ErrConflict)
	}
	if s.txnCrash == "decided" {
		return errCrashed
	}
	// Past the commit the caller must hear the outcome even if it gives
	// up, and readers finish what fails here.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	if err := s.rollForward(fctx, txn, seq, keys, s.clearOnCommit); errors.Is(err, errCrashed) {
		return err
	}
	return nil
}

// abort decides the transaction aborted and deletes what of it is in (the
// deletes match only documents carrying its mark).
func (t *txnWriter) abort(ctx context.Context) {
	if len(t.keys) > 0 {
		t.s.abort(ctx, t.txn, t.keys, t.keys)
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	t.forgetLive(fctx)
}

// insertVersions inserts the version documents docs under keys: in one
// round trip, but for the first of a transaction (first), inserted alone
// before (a test may stop the writer after it); those refused for a
// duplicate _id again one by one, by insertVersion. freed reports that
// insertVersion freed some number.
func (s *Store) insertVersions(ctx context.Context, keys []string, docs []any, first bool) (freed bool, err error) {
	if first {
		if freed, err = s.insertVersion(ctx, keys[0], docs[0].(bson.D)); err != nil {
			return freed, err
		}
		if s.txnCrash == "first" {
			return freed, errCrashed
		}
		keys, docs = keys[1:], docs[1:]
	}
	if len(docs) == 0 {
		return freed, nil
	}
	_, err = s.versions.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	var bwe mongodrv.BulkWriteException
	if err == nil || !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		return freed, translate(ctx, "write", err)
	}
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 {
			return freed, translate(ctx, "write", err)
		}
	}
	for _, we := range bwe.WriteErrors {
		i := we.Index
		f, err := s.insertVersion(ctx, keys[i], docs[i].(bson.D))
		if err != nil {
			return freed, err
		}
		freed = freed || f
	}
	return freed, nil
}

// onlyDuplicates reports whether every error of a bulk insert is a
// duplicate _id.
func onlyDuplicates(err error) bool {
	var bwe mongodrv.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return false
	}
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 {
			return false
		}
	}
	return true
}

// insertVersion inserts version document d under key. A document already
// there that belongs to an aborted transaction, or to one that went stale
// (aborted now), is removed first (freed reports that), with its marker;
// any other is a conflict: without waiting, so that two transactions that
// each hold what the other needs never wait for each other.
func (s *Store) insertVersion(ctx context.Context, key string, d bson.D) (freed bool, err error) {
	for range 3 {
		_, err := s.versions.InsertOne(ctx, d)
		if !mongodrv.IsDuplicateKeyError(err) {
			return freed, translate(ctx, "write "+key, err)
		}
		ok, err := s.free(ctx, key)
		if err != nil {
			return freed, err
		}
		if !ok {
			break
		}
		freed = true
	}
	return freed, fmt.Errorf("mongo: write %s: already exists: %w", key, store.ErrConflict)
}

// free looks at the version document under key, which a writer could not
// insert: it reports true when that one belonged to an aborted transaction,
// or to one that went stale (aborted now), and is deleted.
func (s *Store) free(ctx context.Context, key string) (bool, error) {
	var d versionDoc
	err := s.versions.FindOne(ctx, bson.D{{Key: "_id", Value: key}}, options.FindOne().SetProjection(txnProjection)).Decode(&d)
	switch {
	case errors.Is(err, mongodrv.ErrNoDocuments):
		return true, nil
	case err != nil:
		return false, translate(ctx, "read "+key, err)
	case d.Txn == "":
		return false, nil
	}
	d.Key = key
	out, err := s.outcomes(ctx, []*versionDoc{&d})
	if err != nil || out[d.Txn].Outcome != aborted {
		return false, err
	}
	if err := s.deleteAborted(ctx, d.Txn, []string{key}); err != nil {
		return false, err
	}
	return true, nil
}

var txnProjection = bson.D{{Key: "txn", Value: 1}, {Key: "txnexp", Value: 1}, {Key: "tseq", Value: 1}, {Key: "ttx", Value: 1}}

// markProjection is what Store.visible needs of a version.
var markProjection = append(bson.D{{Key: "type", Value: 1}, {Key: "id", Value: 1}, {Key: "vid", Value: 1}}, txnProjection...)

// decide inserts the decision of txn, unless there is one already; it
// returns the decision that stands.
func (s *Store) decide(ctx context.Context, txn, outcome string, keys []string, seq int64) (string, error) {
	d := bson.D{{Key: "_id", Value: txn}, {Key: "outcome", Value: outcome}}
	if outcome == committed {
		d = append(d, bson.E{Key: "seq", Value: seq}, bson.E{Key: "keys", Value: keys})
	}
	_, err := s.txns.InsertOne(ctx, d)
	if err == nil {
		return outcome, nil
	}
	if !mongodrv.IsDuplicateKeyError(err) {
		return "", translate(ctx, "decide "+txn, err)
	}
	var got decisionDoc
	if err := s.txns.FindOne(ctx, bson.D{{Key: "_id", Value: txn}}, options.FindOne().SetProjection(bson.D{{Key: "outcome", Value: 1}})).Decode(&got); err != nil {
		return "", translate(ctx, "decide "+txn, err)
	}
	return got.Outcome, nil
}

// abort decides txn aborted (unless it is decided already), deletes the
// versions of inserted and the markers of keys it wrote. Errors are
// dropped: versions left are found and removed by readers and writers
// later, and a marker left is removed by the next writer of its version.
func (s *Store) abort(ctx context.Context, txn string, inserted, keys []string) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	if out, err := s.decide(fctx, txn, aborted, nil, 0); err != nil || out != aborted {
		return
	}
	if len(inserted) > 0 {
		_ = s.deleteAborted(fctx, txn, inserted)
	}
	_, _ = s.pending.DeleteMany(fctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}, {Key: "txn", Value: txn}})
}

// deleteAborted deletes the versions keys of the aborted transaction txn
// and their markers (see deleteAbortedAll).
func (s *Store) deleteAborted(ctx context.Context, txn string, keys []string) error {
	return s.deleteAbortedAll(ctx, map[string][]string{txn: keys})
}

// deleteAbortedAll deletes, for each aborted transaction of dead, the
// versions it names and their markers, in one delete for them all.
// FerretDB v1 deletes by reading the matching documents, then deleting
// their _ids; were two processes to delete one version at once, the later
// could delete, by _id, the version a third inserted in between. So the
// deleter first claims each transaction (see Store.remove), leaving out
// those someone else is deleting: only a deleter of a transaction's
// versions deletes a document carrying its mark, and they take turns.
func (s *Store) deleteAbortedAll(ctx context.Context, dead map[string][]string) error {
	var keys, txns bson.A
	for txn, ks := range dead {
		c, err := s.claimOnce(ctx, "del/"+txn)
		if err != nil {
			return err
		}
		if c == nil {
			continue
		}
		defer c.release()
		txns = append(txns, txn)
		for _, k := range ks {
			keys = append(keys, k)
		}
	}
	if len(txns) == 0 {
		return nil
	}
	// A document under one transaction's key that carries another of
	// them is that one's, aborted too and claimed.
	in := bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}, {Key: "txn", Value: bson.D{{Key: "$in", Value: txns}}}}
	if _, err := s.versions.DeleteMany(ctx, in); err != nil {
		return translate(ctx, "delete aborted", err)
	}
	_, err := s.pending.DeleteMany(ctx, in)
	return translate(ctx, "unmark aborted", err)
}

// rollForward finishes the committed transaction txn, numbered seq, which
// wrote keys:
//
//  1. supersede every update's predecessor (sup true, index arrays
//     removed);
//  2. delete the markers of keys;
//  3. clear: on every version of txn, replace the mark (txn, txnexp) by
//     the stamp (tseq: seq, ttx: txn), with one update of them all, so
//     that readers judge them without the decision;
//  4. delete the decision, which no version refers to any more.
//
// Steps 1 and 2 set the same values whoever runs them, so any number of
// processes may do them at once. Step 3 is another kind of update of the
// same documents, and FerretDB v1 writes an updated document back whole:
// a clear that read a version before a supersede of it and wrote after
// would undo the supersede. Two rules exclude that. A version is built
// on (Store.check), and so superseded, only once it carries no mark,
// that is after the clear's write of it landed; and clearers of one
// transaction take turns, on the claim clr/<txn>, the next one finding
// nothing marked. A process that finds the claim held leaves the clear
// to its holder.
//
// Without clear, steps 3 and 4 are left for later, and the decision is
// marked done instead (readers then skip steps 1 and 2): on FerretDB v1 an
// update of k documents costs k scans of the collection (it writes each
// back by an _id filter that no index serves), so there the clear waits
// until a writer builds on a marked version (Store.check). Readers judge
// marked versions by the decision either way.
func (s *Store) rollForward(ctx context.Context, txn string, seq int64, keys []string, clear bool) error {
	for _, k := range keys {
		typ, id, vid, ok := splitKey(k)
		if !ok || vid == 1 {
			continue
		}
		if err := s.supersede(ctx, typ, id, vid); err != nil {
			return err
		}
		if s.txnCrash == "superseded" {
			return errCrashed
		}
	}
	// Any marker of these versions goes, also one a dead writer of the
	// same version number left: they are committed, and finished.
	if _, err := s.pending.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}}); err != nil {
		return translate(ctx, "unmark", err)
	}
	if s.txnCrash == "unmarked" {
		return errCrashed
	}
	if !clear {
		_, err := s.txns.UpdateOne(ctx, bson.D{{Key: "_id", Value: txn}}, bson.D{{Key: "$set", Value: bson.D{{Key: "done", Value: true}}}})
		return translate(ctx, "finish "+txn, err)
	}
	c, err := s.claimOnce(ctx, "clr/"+txn)
	if err != nil || c == nil {
		return err
	}
	if err := c.check(); err != nil {
		c.release()
		return err
	}
	_, err = s.versions.UpdateMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}, {Key: "txn", Value: txn}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "tseq", Value: seq}, {Key: "ttx", Value: txn}}},
			{Key: "$unset", Value: bson.D{{Key: "txn", Value: ""}, {Key: "txnexp", Value: ""}}}})
	if err != nil {
		c.release()
		return translate(ctx, "clear "+txn, err)
	}
	if s.txnCrash == "cleared" {
		return errCrashed // the claim stays, as a dead clearer's would
	}
	_, err = s.txns.DeleteOne(ctx, bson.D{{Key: "_id", Value: txn}, {Key: "outcome", Value: committed}})
	c.release()
	return translate(ctx, "forget "+txn, err)
}

// cleanTimeout bounds the deletion of aborted versions that readers start.
const cleanTimeout = time.Minute

// recoverMax bounds the transactions recoverCommitted finishes.
const recoverMax = 1000

// recoverCommitted rolls forward, at start-up, the transactions whose
// writer died (or gave up) after deciding them committed: theirs are the
// only committed decisions left not done, since a roll-forward deletes
// its decision, or marks it done, last. Readers would finish each on meeting one of its
// versions; this saves them the decision lookups. Errors are dropped for
// the same reason. A transaction that died undecided is left to readers:
// its writer may be alive on another instance.
func (s *Store) recoverCommitted(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	var ds []decisionDoc
	cur, err := s.txns.Find(ctx, bson.D{{Key: "outcome", Value: committed}, {Key: "done", Value: bson.D{{Key: "$ne", Value: true}}}},
		options.Find().SetLimit(recoverMax))
	if err == nil {
		err = cur.All(ctx, &ds)
	}
	if err != nil {
		return
	}
	for _, d := range ds {
		_ = s.rollForward(ctx, d.ID, d.Seq, d.Keys, s.clearOnCommit)
	}
	// The live documents of writers that died (or could not delete them):
	// those past a lease are read by nobody.
	_, _ = s.txns.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$regex", Value: "^" + livePrefix}}},
		{Key: "until", Value: bson.D{{Key: "$lt", Value: time.Now().Add(-s.lease).UnixMilli()}}}})
}

// splitKey is the inverse of versionKey.
func splitKey(k string) (typ, id string, vid int64, ok bool) {
	parts := strings.Split(k, "/")
	if len(parts) != 3 {
		return "", "", 0, false
	}
	var n int64
	if _, err := fmt.Sscan(parts[2], &n); err != nil {
		return "", "", 0, false
	}
	return parts[0], parts[1], n, true
}

// outcomes returns the standing decision of the transactions of the marked
// documents among docs (Outcome "" for one still live). A transaction
// is committed if a document among docs carries its stamp, whatever txns
// says (its decision was deleted after the clear, which came after this
// reader read the marked ones); the marked documents not found committed
// are read again, by _id, to find out. One undecided past its txnexp is
// stale: it is decided aborted here, by whoever gets there first, its writer
// included. Committed ones are rolled forward, aborted ones' documents
// among docs deleted, in the background (errors dropped: this only saves
// later readers work).
func (s *Store) outcomes(ctx context.Context, docs []*versionDoc) (map[string]decisionDoc, error) {
	ids := bson.A{}
	out := map[string]decisionDoc{}
	for _, d := range docs {
		if d.Txn != "" {
			if _, ok := out[d.Txn]; !ok {
				out[d.Txn] = decisionDoc{}
				ids = append(ids, d.Txn, liveKey(d.Txn))
			}
		}
	}
	if len(ids) == 0 {
		return out, nil
	}
	var decided []decisionDoc
	cur, err := s.txns.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
	if err == nil {
		err = cur.All(ctx, &decided)
	}
	if err != nil {
		return nil, translate(ctx, "read decisions", err)
	}
	// live: until when the writer of each transaction still in the works
	// is at it (txnWriter.keepAlive)
	live := map[string]int64{}
	for _, d := range decided {
		if txn, ok := strings.CutPrefix(d.ID, livePrefix); ok {
			live[txn] = d.Until
			continue
		}
		out[d.ID] = d
	}
	// A stamp proves its transaction committed, whatever txns says: the
	// decision may be gone, or, gone, have been followed by an aborted one
	// from a process that judged a marked copy read before the clear (it
	// acts on nothing: no version carries the mark any more).
	for _, d := range docs {
		if o, ok := out[d.TTx]; ok && o.Outcome != committed {
			out[d.TTx] = decisionDoc{ID: d.TTx, Outcome: committed, Seq: d.TSeq}
		}
	}
	// Marked versions not found committed are read again: a transaction
	// whose decision is gone was cleared after this reader read them, and
	// they carry its stamp now (see rollForward); a version gone was an
	// aborted transaction's.
	var again []*versionDoc
	for _, d := range docs {
		if d.Txn != "" && out[d.Txn].Outcome != committed {
			again = append(again, d)
		}
	}
	if len(again) > 0 {
		now, err := s.readMarks(ctx, again)
		if err != nil {
			return nil, err
		}
		for _, d := range again {
			switch n, ok := now[d.Key]; {
			case !ok:
				out[d.Txn] = decisionDoc{ID: d.Txn, Outcome: aborted}
			case n.TTx == d.Txn:
				out[d.Txn] = decisionDoc{ID: d.Txn, Outcome: committed, Seq: n.TSeq}
			}
		}
	}
	now := time.Now().UnixMilli()
	for _, d := range docs {
		if d.Txn == "" || out[d.Txn].Outcome != "" || now <= d.TxnExp || now <= live[d.Txn] {
			continue
		}
		o, err := s.decide(ctx, d.Txn, aborted, nil, 0)
		if err != nil {
			return nil, err
		}
		if o == aborted {
			out[d.Txn] = decisionDoc{ID: d.Txn, Outcome: aborted}
		}
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	for txn, d := range out {
		if d.Outcome == committed && len(d.Keys) > 0 && !d.Done {
			_ = s.rollForward(fctx, txn, d.Seq, d.Keys, s.clearOnCommit)
		}
	}
	dead := map[string][]string{}
	for _, d := range docs {
		if d.Txn != "" && out[d.Txn].Outcome == aborted {
			dead[d.Txn] = append(dead[d.Txn], d.Key)
		}
	}
	if len(dead) > 0 && s.cleaning.CompareAndSwap(false, true) {
		// In the background, one batch at a time: the reader needs none
		// of it, and on FerretDB a delete scans the whole collection.
		go func() {
			defer s.cleaning.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), cleanTimeout)
			defer cancel()
			_ = s.deleteAbortedAll(ctx, dead)
		}()
	}
	return out, nil
}

// readMarks reads the marks and stamps of docs again, by _id: one lookup
// each for one or two (on FerretDB a lookup by _id alone is the cheap
// query), one query for more.
func (s *Store) readMarks(ctx context.Context, docs []*versionDoc) (map[string]*versionDoc, error) {
	now := map[string]*versionDoc{}
	if len(docs) <= 2 {
		for _, d := range docs {
			var n versionDoc
			err := s.versions.FindOne(ctx, bson.D{{Key: "_id", Value: d.Key}}, options.FindOne().SetProjection(txnProjection)).Decode(&n)
			switch {
			case errors.Is(err, mongodrv.ErrNoDocuments):
			case err != nil:
				return nil, translate(ctx, "read "+d.Key, err)
			default:
				now[d.Key] = &n
			}
		}
		return now, nil
	}
	keys := bson.A{}
	for _, d := range docs {
		keys = append(keys, d.Key)
	}
	var found []*versionDoc
	cur, err := s.versions.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}}, options.Find().SetProjection(txnProjection))
	if err == nil {
		err = cur.All(ctx, &found)
	}
	if err != nil {
		return nil, translate(ctx, "read marks", err)
	}
	for _, n := range found {
		now[n.Key] = n
	}
	return now, nil
}

// moving is what a reader of current versions learnt, after its
// watermark and before its query, of the updates in flight: the keys of
// the versions that had a pending marker (see Store.finishPending). With
// all, there were too many to list.
type moving struct {
	keys map[string]bool
	all  bool
}

// visible keeps the documents of docs that a reader whose watermark is w
// may see: those of no transaction, those a transaction stamped with a
// number w or lower (see rollForward), and those a transaction marks that
// is committed and numbered w or lower (all of whose versions a query
// made after w was read has met; see nextSeq).
//
// A reader of current versions (mv not nil; docs sup false when read)
// also drops a version whose successor exists by now and counts: a
// transaction that replaced it may have superseded it only after the
// query read it. Only the successors of versions that had a marker when
// the reader began are read: a transaction counting for the reader had
// marked its updates before it took its number, and removes a marker
// only after superseding the predecessor, so a marker gone by then means
// the predecessor was superseded before the query, which then did not
// read it.
func (s *Store) visible(ctx context.Context, docs []*versionDoc, w int64, mv *moving) ([]*versionDoc, error) {
	marked, stamped := false, false
	for _, d := range docs {
		marked = marked || d.Txn != ""
		stamped = stamped || d.TSeq > 0
	}
	var check []*versionDoc
	if mv != nil {
		for _, d := range docs {
			if mv.all && (marked || stamped) || mv.keys[versionKey(d.Type, d.ID, d.VID+1)] {
				check = append(check, d)
			}
		}
	}
	if !marked && len(check) == 0 && (!stamped || w == anyTime) {
		return docs, nil
	}
	lookAt := slicesClone(docs)
	next := map[string]*versionDoc{}
	if len(check) > 0 {
		keys := bson.A{}
		for _, d := range check {
			keys = append(keys, versionKey(d.Type, d.ID, d.VID+1))
		}
		var succ []*versionDoc
		cur, err := s.versions.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}},
			options.Find().SetProjection(markProjection))
		if err == nil {
			err = cur.All(ctx, &succ)
		}
		if err != nil {
			return nil, translate(ctx, "search", err)
		}
		for _, n := range succ {
			n.Key = versionKey(n.Type, n.ID, n.VID)
			next[versionKey(n.Type, n.ID, n.VID-1)] = n
		}
		lookAt = append(lookAt, succ...)
	}
	// The decisions are read last: what they say held when the documents
	// above were read, or later.
	out, err := s.outcomes(ctx, lookAt)
	if err != nil {
		return nil, err
	}
	seen := func(d *versionDoc) bool {
		if d.Txn == "" {
			return d.TSeq <= w
		}
		o := out[d.Txn]
		return o.Outcome == committed && o.Seq <= w
	}
	kept := make([]*versionDoc, 0, len(docs))
	for _, d := range docs {
		if !seen(d) {
			continue
		}
		if n := next[d.Key]; n != nil && seen(n) {
			continue
		}
		kept = append(kept, d)
	}
	return kept, nil
}

func slicesClone(docs []*versionDoc) []*versionDoc { return append([]*versionDoc(nil), docs...) }

// claimOnce takes the claim key if no one holds it (nil if someone does),
// taking it over from a holder whose lease has run out.
func (s *Store) claimOnce(ctx context.Context, key string) (*claim, error) {
	c := &claim{s: s, token: newToken(), unlock: func() {}}
	for {
		at := time.Now()
		_, err := s.claims.InsertOne(ctx, bson.D{
			{Key: "_id", Value: key}, {Key: "token", Value: c.token}, {Key: "exp", Value: at.Add(s.lease).UnixMilli()},
		})
		if err == nil {
			c.start, c.held = at, []string{key}
			return c, nil
		}
		if !mongodrv.IsDuplicateKeyError(err) {
			return nil, translate(ctx, "claim", err)
		}
		var d claimDoc
		err = s.claims.FindOne(ctx, bson.D{{Key: "_id", Value: key}}).Decode(&d)
		switch {
		case errors.Is(err, mongodrv.ErrNoDocuments):
			continue
		case err != nil:
			return nil, translate(ctx, "claim", err)
		case time.Now().UnixMilli() <= d.Exp:
			return nil, nil
		}
		if removed, err := s.remove(ctx, key, d.Token); err != nil || !removed {
			return nil, err
		}
	}
}
