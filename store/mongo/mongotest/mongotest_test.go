package mongotest_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/fmtbank/cmts/store/mongo/mongotest"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestStartStopRestart proves the harness: a started server stores and finds
// a document, refuses connections while stopped, and after Restart is back on
// the same URI with the document still there.
func TestStartStopRestart(t *testing.T) {
	t.Parallel()
	srv := mongotest.Start(t)
	c := mongotest.Connect(t, srv.URI())
	coll := c.Database(srv.Database(t)).Collection("patients")

	ctx := ctxT(t, 60*time.Second)
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "p1"}, {Key: "name", Value: "Ada"}}); err != nil {
		t.Fatalf("insert: %v", err)
	}
	findName := func() string {
		t.Helper()
		var got struct{ Name string }
		if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "p1"}}).Decode(&got); err != nil {
			t.Fatalf("find: %v", err)
		}
		return got.Name
	}
	if got := findName(); got != "Ada" {
		t.Fatalf("found name %q, want Ada", got)
	}

	uri := srv.URI()
	srv.Stop() // skips the rest on an external MongoDB
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err := c.Ping(pctx, readpref.Primary())
	cancel()
	if err == nil {
		t.Fatal("ping succeeded after Stop")
	}
	srv.Stop() // idempotent

	srv.Restart()
	if srv.URI() != uri {
		t.Fatalf("URI changed across Restart: %s -> %s", uri, srv.URI())
	}
	if err := c.Ping(ctx, readpref.Primary()); err != nil {
		t.Fatalf("ping after Restart: %v", err)
	}
	if got := findName(); got != "Ada" {
		t.Fatalf("after Restart found name %q, want Ada", got)
	}
}

// TestDatabaseIsFresh checks that Database returns distinct names.
func TestDatabaseIsFresh(t *testing.T) {
	t.Parallel()
	srv := mongotest.Start(t)
	a, b := srv.Database(t), srv.Database(t)
	if a == b || a == "" {
		t.Fatalf("Database returned %q and %q", a, b)
	}
}

// TestArrayQueryForms pins how the server evaluates the array query forms
// the MongoDB store is meant to use (see "Known FerretDB v1 differences" in
// docs/testing-mongodb.md), so that a change in FerretDB is noticed:
//
//   - equality (and $in) on an array element: correct on both engines;
//   - operator-only $elemMatch range on an array of strings: correct on
//     MongoDB, but NOT on FerretDB v1.24: FerretDB checks each operator
//     against any element (internal/handler/common/filter.go,
//     filterFieldExprElemMatch), so a document with one key above the lower
//     bound and another below the upper bound matches although no key lies
//     in the range. Its result is a superset of the right one; the store has
//     to re-check candidates (or $unwind and $match the unwound key, which
//     FerretDB gets right).
func TestArrayQueryForms(t *testing.T) {
	t.Parallel()
	srv := mongotest.Start(t)
	c := mongotest.Connect(t, srv.URI())
	coll := c.Database(srv.Database(t)).Collection("idx")
	ctx := ctxT(t, 60*time.Second)

	docs := []any{
		// "split" has a key >= "date|2020" and another < "date|2021", but
		// none in between.
		bson.D{{Key: "_id", Value: "split"}, {Key: "k", Value: bson.A{"date|2022-01", "code|x|1"}}},
		bson.D{{Key: "_id", Value: "inside"}, {Key: "k", Value: bson.A{"code|x|2", "date|2020-07"}}},
		bson.D{{Key: "_id", Value: "above"}, {Key: "k", Value: bson.A{"date|2022-01"}}},
		bson.D{{Key: "_id", Value: "scalar"}, {Key: "k", Value: "date|2020-07"}},
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatalf("insert: %v", err)
	}

	ids := func(filter bson.D) []string {
		t.Helper()
		cur, err := coll.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			t.Fatalf("find %v: %v", filter, err)
		}
		var out []struct {
			ID string `bson:"_id"`
		}
		if err := cur.All(ctx, &out); err != nil {
			t.Fatalf("find %v: %v", filter, err)
		}
		var got []string
		for _, d := range out {
			got = append(got, d.ID)
		}
		return got
	}
	check := func(name string, filter bson.D, want ...string) {
		t.Helper()
		if got := ids(filter); !slices.Equal(got, want) {
			t.Errorf("%s: %v matched %v, want %v", name, filter, got, want)
		}
	}

	check("element equality", bson.D{{Key: "k", Value: "code|x|1"}}, "split")
	check("element $in", bson.D{{Key: "k", Value: bson.D{{Key: "$in", Value: bson.A{"code|x|2", "nope"}}}}}, "inside")

	elemRange := bson.D{{Key: "k", Value: bson.D{{Key: "$elemMatch", Value: bson.D{
		{Key: "$gte", Value: "date|2020"}, {Key: "$lt", Value: "date|2021"},
	}}}}}
	if srv.External() {
		check("operator-only $elemMatch range (MongoDB)", elemRange, "inside")
	} else {
		// If this starts failing with only "inside", FerretDB fixed
		// $elemMatch: update the comment above and docs/testing-mongodb.md.
		check("operator-only $elemMatch range (FerretDB v1 quirk)", elemRange, "inside", "split")
	}
}
