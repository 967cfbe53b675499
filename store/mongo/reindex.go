package mongo

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/fmtbank/cmts/store"
	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Scan pages through current versions of all tenants in (type, id) order.
func (s *Store) Scan(ctx context.Context, after *store.SearchCursor, limit int) ([]*store.Version, error) {
	filter := bson.D{{Key: "sup", Value: false}, {Key: "deleted", Value: false}}
	if after != nil {
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "type", Value: bson.D{{Key: "$gt", Value: after.Type}}}},
			bson.D{{Key: "type", Value: after.Type}, {Key: "id", Value: bson.D{{Key: "$gt", Value: after.ID}}}},
		}})
	}
	// One more than asked: an update in flight can leave two current
	// versions of one resource, of which the newer is kept.
	opts := options.Find().SetSort(bson.D{{Key: "type", Value: 1}, {Key: "id", Value: 1}, {Key: "vid", Value: -1}}).
		SetLimit(int64(limit + 1)).SetProjection(versionProjection)
	docs, err := s.find(ctx, "scan", filter, opts)
	if err == nil {
		docs, err = s.visible(ctx, docs, anyTime, nil)
	}
	if err != nil {
		return nil, err
	}
	docs = slices.CompactFunc(docs, func(a, b *versionDoc) bool { return a.Type == b.Type && a.ID == b.ID })
	var out []*store.Version
	for _, d := range docs[:min(limit, len(docs))] {
		out = append(out, d.version())
	}
	return out, nil
}

// SetIndex rewrites the index fields of a current version. On a real MongoDB
// the update is atomic on the document; FerretDB v1 reads and writes back, so
// run reindex there with writes stopped (docs/reindex.md).
func (s *Store) SetIndex(ctx context.Context, v *store.Version, entries []store.IndexEntry) error {
	// A newer version exists only once a writer has marked it (Put step 2)
	// or superseded this one (step 4, checked by the update's filter).
	err := s.pending.FindOne(ctx, bson.D{{Key: "_id", Value: versionKey(v.Type, v.ID, v.VersionID+1)}}).Err()
	switch {
	case err == nil:
		return fmt.Errorf("mongo: %s/%s is moving past version %d: %w", v.Type, v.ID, v.VersionID, store.ErrConflict)
	case !errors.Is(err, mongodrv.ErrNoDocuments):
		return translate(ctx, "reindex "+v.Type+"/"+v.ID, err)
	}
	fields := indexFields(entries)
	set := bson.D{}
	unset := bson.D{}
	have := map[string]bool{}
	for _, f := range fields {
		have[f.Key] = true
		set = append(set, f)
	}
	for _, f := range indexArrays {
		if !have[f] {
			unset = append(unset, bson.E{Key: f, Value: ""})
		}
	}
	update := bson.D{}
	if len(set) > 0 {
		update = append(update, bson.E{Key: "$set", Value: set})
	}
	if len(unset) > 0 {
		update = append(update, bson.E{Key: "$unset", Value: unset})
	}
	key := versionKey(v.Type, v.ID, v.VersionID)
	// Not a version still marked by its transaction: the clear that
	// removes the mark (Store.rollForward) could meet this write, and one
	// undo the other on FerretDB.
	res, err := s.versions.UpdateOne(ctx, bson.D{{Key: "_id", Value: key}, {Key: "sup", Value: false}, {Key: "deleted", Value: false},
		{Key: "txn", Value: bson.D{{Key: "$exists", Value: false}}}}, update)
	if err != nil {
		return translate(ctx, "reindex "+key, err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("mongo: %s is not current: %w", key, store.ErrConflict)
	}
	return nil
}

// Count counts current, non-deleted versions (an update in flight may count twice).
func (s *Store) Count(ctx context.Context) (int, error) {
	n, err := s.versions.CountDocuments(ctx, bson.D{{Key: "sup", Value: false}, {Key: "deleted", Value: false}})
	return int(n), translate(ctx, "count", err)
}
