package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/store"
	"github.com/google/go-cmp/cmp"
)

// TestBuildersWindow checks that the builders of a stream run at most
// window entries ahead of the entry taken last, build every entry once and
// hand them over in order, and that close stops them.
func TestBuildersWindow(t *testing.T) {
	t.Parallel()
	const n = 5*window + 7
	var taken atomic.Int64 // entries taken so far
	var ahead atomic.Int64 // the most entries started beyond those taken
	var mu sync.Mutex
	built := map[int]int{}
	b := newBuilders(n, func(i int) (*store.Write, error) {
		if d := int64(i) - taken.Load(); d > ahead.Load() {
			ahead.Store(d) // racy maximum: good enough, it only grows
		}
		mu.Lock()
		built[i]++
		mu.Unlock()
		return &store.Write{Version: store.Version{VersionID: int64(i) + 1}}, nil
	})
	for i := range n {
		wr, err := b.take(i)
		if err != nil || wr == nil || wr.Version.VersionID != int64(i)+1 {
			t.Fatalf("take(%d) = %v, %v", i, wr, err)
		}
		taken.Store(int64(i) + 1)
		b.done()
	}
	b.close()
	if a := ahead.Load(); a >= window {
		t.Errorf("a builder started entry %d beyond the last taken; the window is %d", a, window)
	}
	if len(built) != n {
		t.Errorf("%d entries built, want %d", len(built), n)
	}
	for i, k := range built {
		if k != 1 {
			t.Errorf("entry %d built %d times", i, k)
		}
	}
}

// TestBuildersStop checks that builders stopped half-way (the store gave
// up) build nothing more.
func TestBuildersStop(t *testing.T) {
	t.Parallel()
	const n = 10 * window
	var count atomic.Int64
	boom := errors.New("boom")
	b := newBuilders(n, func(i int) (*store.Write, error) {
		count.Add(1)
		if i == 3 {
			return nil, boom
		}
		return &store.Write{}, nil
	})
	for i := range 4 {
		_, err := b.take(i)
		if (i == 3) != errors.Is(err, boom) {
			t.Fatalf("take(%d): %v", i, err)
		}
		if err == nil {
			b.done()
		}
	}
	b.close()
	if c := count.Load(); c > 4+window {
		t.Errorf("%d entries built after the stream stopped at entry 3 (window %d)", c, window)
	}
}

// mayHoldConditionalReference reports whether a resource, as JSON, may
// hold a conditional reference: whether conditionalReferencesIn finds one
// or is in doubt.
func mayHoldConditionalReference(raw []byte) bool {
	refs, sure := conditionalReferencesIn(raw)
	return len(refs) > 0 || !sure
}

func TestMayHoldConditionalReference(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, json string
		want       bool
	}{
		{"no reference", `{"resourceType":"Patient","id":"a"}`, false},
		{"a '?' elsewhere", `{"resourceType":"Patient","name":[{"text":"who?"}]}`, false},
		{"a literal reference", `{"resourceType":"Observation","subject":{"reference":"Patient/1"},"note":[{"text":"?"}]}`, false},
		{"a URL with a query", `{"resourceType":"Observation","subject":{"reference":"http://x/fhir/Patient/1?a=b"}}`, false},
		{"conditional", `{"resourceType":"Observation","subject":{"reference":"Patient?identifier=s|v"}}`, true},
		{"nested in an extension", `{"resourceType":"Patient","extension":[{"url":"u","valueReference":{"reference":"Organization?name=x"}}]}`, true},
		{"in a contained resource", `{"resourceType":"Patient","contained":[{"resourceType":"Observation","id":"o","subject":{"reference":"Patient?name=y"}}]}`, true},
		{"an escaped '?'", `{"resourceType":"Observation","subject":{"reference":"Patient\u003fname=x"}}`, true},
		{"an escaped key", `{"resourceType":"Observation","subject":{"refer\u0065nce":"Patient?name=x"}}`, true},
		{"malformed", `{"resourceType":"Observation","subject":{"reference":"Patient?name=x"`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mayHoldConditionalReference([]byte(tc.json)); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestResponseWriteTo checks that the response Bundle rendered entry by
// entry is the document encoding/json makes of it whole.
func TestResponseWriteTo(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	reply := Reply{Base: "http://x/fhir", Return: "representation", Lang: fhir.English}
	created := &Result{Status: http.StatusCreated, Message: msgCreated, Version: &store.Version{Type: "Patient", ID: "a", VersionID: 1,
		LastUpdated: at, Resource: []byte(`{"resourceType":"Patient","id":"a"}`)}}
	deleted := &Result{Status: http.StatusNoContent, Message: msgDeleted, Version: &store.Version{Type: "Patient", ID: "b", VersionID: 3, LastUpdated: at, Deleted: true}}
	failed := reply.failure(fhir.NotFound("Patient", "c"))
	read := reply.read(http.StatusOK, http.Header{"Etag": {`W/"2"`}}, []byte(`{"resourceType":"Patient", "id":"d"}`), http.MethodGet)
	whole := responseBundle{ResourceType: "Bundle", ID: "r", Type: "batch-response", Meta: responseMeta{LastUpdated: "2026-03-04T05:06:07Z"},
		Entry: []responseEntry{reply.entry(created), failed, reply.entry(deleted), read}}
	want, err := json.Marshal(whole)
	if err != nil {
		t.Fatal(err)
	}
	head, _ := json.Marshal(responseBundle{ResourceType: "Bundle", ID: "r", Type: "batch-response", Meta: whole.Meta, Entry: []responseEntry{}})
	fb, _ := json.Marshal(failed)
	rb, _ := json.Marshal(read)
	r := &Response{head: head[:len(head)-2], reply: reply, answers: []answer{{res: created}, {rendered: fb}, {res: deleted}, {rendered: rb}}}
	var got bytes.Buffer
	n, err := r.WriteTo(&got)
	if err != nil || n != int64(got.Len()) {
		t.Fatalf("WriteTo: %d, %v (wrote %d)", n, err, got.Len())
	}
	if diff := cmp.Diff(string(want), got.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestConditionalReferencesIn checks the conditional references read from
// a resource's JSON in place, and a conditional update's id.
func TestConditionalReferencesIn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, json string
		refs       []string
		sure       bool
		id         string
	}{
		{"none", `{"resourceType":"Patient","id":"a"}`, nil, true, "a"},
		{"two, one repeated", `{"resourceType":"Observation","subject":{"reference":"Patient?identifier=s|v"},
			"performer":[{"reference":"Practitioner?name=x"},{"reference":"Patient?identifier=s|v"}]}`,
			[]string{"Patient?identifier=s|v", "Practitioner?name=x"}, true, ""},
		{"literal and absolute ones left out", `{"resourceType":"Observation","subject":{"reference":"Patient/1"},
			"focus":[{"reference":"http://x/fhir/Patient?name=y"}],"id":"o"}`, nil, true, "o"},
		{"an escaped '?'", `{"resourceType":"Observation","subject":{"reference":"Patient\u003fname=x"}}`, []string{"Patient?name=x"}, true, ""},
		{"in a contained resource", `{"resourceType":"Patient","contained":[{"resourceType":"Observation","id":"o","subject":{"reference":"Patient?name=y"}}]}`,
			[]string{"Patient?name=y"}, true, ""},
		{"an escaped key", `{"resourceType":"Observation","subject":{"refer\u0065nce":"Patient?name=x"}}`, nil, false, ""},
		{"malformed", `{"resourceType":"Observation","subject":{"reference":"Patient?name=x"`, nil, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refs, sure := conditionalReferencesIn([]byte(tc.json))
			if sure != tc.sure || (sure && !slices.Equal(refs, tc.refs)) {
				t.Errorf("conditionalReferencesIn: %q, %v; want %q, %v", refs, sure, tc.refs, tc.sure)
			}
			if id, ok := topLevelID([]byte(tc.json)); tc.sure && (!ok || id != tc.id) {
				t.Errorf("topLevelID: %q, %v; want %q", id, ok, tc.id)
			}
		})
	}
}

// TestNewOrderedID checks that ordered ids are valid FHIR ids of NewID's
// length, distinct within a millisecond, and sort in the order of their
// milliseconds.
func TestNewOrderedID(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 2, 3, 4, 5e6, time.UTC)
	seen := map[string]bool{}
	prev := ""
	for i := range 2000 {
		id := NewOrderedID(t0.Add(time.Duration(i/4) * time.Millisecond))
		if err := CheckID(id); err != nil || len(id) != len(NewID()) {
			t.Fatalf("%q: %v", id, err)
		}
		if seen[id] {
			t.Fatalf("%q made twice", id)
		}
		seen[id] = true
		if i%4 == 0 && id <= prev {
			t.Fatalf("%q (ms %d) sorts before %q", id, i/4, prev)
		}
		prev = max(prev, id)
	}
}
