package mongo_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/mongo"
	"github.com/fmtbank/cmts/store/mongo/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// Run with: go test ./store/mongo/ -run XXX -bench . -benchtime 2s
//
// BenchmarkRawInsert and BenchmarkRawFind are the yardsticks: one driver
// call each on the same server, against which the Store's calls compare. On
// FerretDB the figures say little about MongoDB (see docs/mongodb.md).
//
// FerretDB v1 answers even a lookup by _id by scanning the collection up to
// the document it finds, so Read and update cost there in proportion to the
// number of documents: the sub-benchmarks named resources=N run on a
// collection that holds N resources, as a server's does, and the others on
// a nearly empty one, where only the number of round trips shows.

// benchResources is the size of the populated collections.
const benchResources = 2000

// populate creates resources q0 .. q{n-1}, one version each.
func populate(b *testing.B, s *mongo.Store, n int) {
	b.Helper()
	for i := range n {
		if err := s.Put(context.Background(), store.Write{Version: benchVersion(fmt.Sprintf("q%d", i), 1)}); err != nil {
			b.Fatal(err)
		}
	}
}

// spread returns the i-th of n resources in an order that visits them all,
// old and new alike, however few iterations a benchmark runs (on FerretDB
// the oldest documents are the cheapest to find).
func spread(i, n int) int { return i * 7919 % n }

// body returns a FHIR-like JSON resource of about 1 KB.
func body(id string) []byte {
	return fmt.Appendf(nil, `{"resourceType":"Patient","id":%q,"identifier":[{"system":"urn:mrn","value":%q}],"text":{"div":%q}}`,
		id, id, strings.Repeat("x", 900))
}

func benchVersion(id string, vid int64) store.Version {
	return store.Version{
		Tenant: "h1", Type: "Patient", ID: id, VersionID: vid,
		LastUpdated: time.Now().UTC().Truncate(time.Microsecond), Resource: body(id),
		Index: []store.IndexEntry{
			{Param: "identifier", Kind: store.KindToken, System: "urn:mrn", Code: id},
			{Param: "gender", Kind: store.KindToken, System: "http://hl7.org/fhir/administrative-gender", Code: "female"},
			{Param: "_id", Kind: store.KindToken, Code: id},
		},
	}
}

func BenchmarkRawInsert(b *testing.B) {
	srv := mongotest.Start(b)
	coll := mongotest.Connect(b, srv.URI()).Database(srv.Database(b)).Collection("raw")
	ctx := context.Background()
	i := 0
	for b.Loop() {
		id := fmt.Sprintf("p%d", i)
		i++
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "body", Value: body(id)}}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawFind(b *testing.B) {
	srv := mongotest.Start(b)
	coll := mongotest.Connect(b, srv.URI()).Database(srv.Database(b)).Collection("raw")
	ctx := context.Background()
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "p"}, {Key: "body", Value: body("p")}}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		var d bson.Raw
		if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "p"}}).Decode(&d); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPut(b *testing.B) {
	srv := mongotest.Start(b)
	ctx := context.Background()
	b.Run("create", func(b *testing.B) {
		s := open(b, srv)
		i := 0
		for b.Loop() {
			if err := s.Put(ctx, store.Write{Version: benchVersion(fmt.Sprintf("p%d", i), 1)}); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("update", func(b *testing.B) {
		s := open(b, srv)
		vid := int64(1)
		if err := s.Put(ctx, store.Write{Version: benchVersion("p", vid)}); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if err := s.Put(ctx, store.Write{PrevVersion: vid, Version: benchVersion("p", vid+1)}); err != nil {
				b.Fatal(err)
			}
			vid++
		}
	})
	b.Run(fmt.Sprintf("update/resources=%d", benchResources), func(b *testing.B) {
		s := open(b, srv)
		populate(b, s, benchResources)
		vids := make([]int64, benchResources)
		i := 0
		for b.Loop() {
			n := spread(i, benchResources)
			i++
			vids[n]++
			if err := s.Put(ctx, store.Write{PrevVersion: vids[n], Version: benchVersion(fmt.Sprintf("q%d", n), vids[n]+1)}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkRead(b *testing.B) {
	srv := mongotest.Start(b)
	ctx := context.Background()
	b.Run("versions=3", func(b *testing.B) {
		s := open(b, srv)
		for vid := int64(1); vid <= 3; vid++ {
			if err := s.Put(ctx, store.Write{PrevVersion: vid - 1, Version: benchVersion("p", vid)}); err != nil {
				b.Fatal(err)
			}
		}
		for b.Loop() {
			if _, err := s.Read(ctx, store.Tenant("h1"), "Patient", "p"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run(fmt.Sprintf("resources=%d", benchResources), func(b *testing.B) {
		s := open(b, srv)
		populate(b, s, benchResources)
		i := 0
		for b.Loop() {
			if _, err := s.Read(ctx, store.Tenant("h1"), "Patient", fmt.Sprintf("q%d", spread(i, benchResources))); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
