package mongo_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/mongo/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// Run with: go test ./store/mongo/ -run XXX -bench . -benchtime 2s
//
// BenchmarkRawInsert and BenchmarkRawFind are the yardsticks: one driver
// call each on the same server, against which the Store's calls compare. On
// FerretDB the figures say little about MongoDB (see docs/mongodb.md).

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
}

func BenchmarkRead(b *testing.B) {
	srv := mongotest.Start(b)
	s := open(b, srv)
	ctx := context.Background()
	for vid := int64(1); vid <= 3; vid++ {
		if err := s.Put(ctx, store.Write{PrevVersion: vid - 1, Version: benchVersion("p", vid)}); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if _, err := s.Read(ctx, "h1", "Patient", "p"); err != nil {
			b.Fatal(err)
		}
	}
}
