package sqlite

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/search"
	"github.com/fmtbank/cmts/store"
)

// BenchmarkPutLarge measures a write of a resource at the default limits
// (and smaller ones): Put holds the embedded store's one write connection,
// and SQLite's write lock, for its whole time, so ns/op is how long other
// writers wait behind it. Parsing, marshalling and index extraction happen
// before Put (the REST suite's LargeWriteHoldsNoLock checks that); what
// remains is writing the version and its index entries.
func BenchmarkPutLarge(b *testing.B) {
	codec, err := fhir.NewCodec()
	if err != nil {
		b.Fatal(err)
	}
	engine, err := search.New()
	if err != nil {
		b.Fatal(err)
	}
	for _, names := range []int{1, 1000, 10000, 99000} {
		// names distinct given names, 9,999 to a HumanName (under max-array)
		var hn []string
		for i := 0; i < names; i += 9999 {
			var given []string
			for j := i; j < min(names, i+9999); j++ {
				given = append(given, fmt.Sprintf(`"g%06d"`, j))
			}
			hn = append(hn, `{"given":[`+strings.Join(given, ",")+`]}`)
		}
		body := []byte(`{"resourceType":"Patient","name":[` + strings.Join(hn, ",") + `]}`)
		res, err := codec.Parse(body)
		if err != nil {
			b.Fatalf("%d names: %v", names, err)
		}
		out, err := codec.Marshal(res)
		if err != nil {
			b.Fatal(err)
		}
		entries, err := engine.Entries("Patient", out)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("names=%d/entries=%d/bytes=%d", names, len(entries), len(out)), func(b *testing.B) {
			s, err := Open(context.Background(), b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			n := 0
			for b.Loop() {
				n++
				v := store.Version{Tenant: "t1", Type: "Patient", ID: fmt.Sprintf("p%d", n), VersionID: 1,
					LastUpdated: time.Now().UTC(), Resource: out, Index: entries}
				if err := s.Put(context.Background(), store.Write{Version: v}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
