package resttest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/fhirtest"
	"github.com/fmtbank/cmts/fhir/search"
	"github.com/fmtbank/cmts/store"
)

// RunSearchCases loads all the official R4 examples through the REST API
// into one store and runs every SearchCase over them, comparing the answer
// with the hand-worked one.
func RunSearchCases(t *testing.T, newStore NewStore) {
	c, st := openLoading(t, newStore)
	loadExamples(t, c, st, nil)
	runSearchCases(t, c, SearchCases)
}

// RunSearchCasesByType runs every SearchCase too, but not over one store of
// all 5,306 examples: the cases are grouped, and each group runs over a
// fresh store loaded with the examples of only the resource types its cases
// can see (caseTypes). The answers are the same, since a case's answer
// depends on no other examples. It is for backends whose searches read every
// stored resource (FerretDB v1 filters the whole collection in Go), where a
// case then costs what its own types hold rather than what the 655
// StructureDefinitions, 1,316 ValueSets and 1,062 CodeSystems hold. The
// bodies go to the store gzip-compressed (packed): the index entries it
// searches are the same. Two groups run at a time, the costliest first (by
// what they load and how many queries read it), so that none ends the run
// alone; they are started from goroutines rather than made parallel, so
// that they do not queue for go test's -parallel slots behind the
// package's other tests.
func RunSearchCasesByType(t *testing.T, newStore NewStore) {
	groups := searchCaseGroups(t)
	all := fhirtest.ExampleFiles(t, "")
	files, bytes := map[string]int{}, map[string]int64{}
	for _, f := range all {
		typ, _, _ := strings.Cut(filepath.Base(f), "-")
		files[typ]++
		if fi, err := os.Stat(f); err == nil {
			bytes[typ] += fi.Size()
		}
	}
	// cost: a query decodes every document (a 20 KB body about as much as
	// a document's index entries), and every case is a query or two.
	cost := func(g searchGroup) int64 {
		var docs int64
		for typ, n := range files {
			if g.types == nil || slices.Contains(g.types, typ) {
				docs += int64(n) + bytes[typ]/20000
			}
		}
		return docs * int64(len(g.cases)+2)
	}
	groups = shareStores(groups, func(g searchGroup) (docs, bodyBytes int64) {
		for _, typ := range g.types {
			docs += int64(files[typ])
			bodyBytes += bytes[typ]
		}
		return docs, bodyBytes
	})
	slices.SortStableFunc(groups, func(a, b searchGroup) int { return cmp.Compare(cost(b), cost(a)) })
	work := make(chan searchGroup)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for g := range work {
				name := strings.Join(g.types, "+")
				if g.types == nil {
					name = "all"
				}
				t.Run(name, func(t *testing.T) {
					c, st := openLoading(t, func(t testing.TB) store.Store { return packed{newStore(t)} })
					loadExamples(t, c, st, g.typeSet())
					runSearchCases(t, c, g.cases)
				})
			}
		})
	}
	for _, g := range groups {
		work <- g
	}
	close(work)
	wg.Wait()
}

// shareStores moves the cases of a group into the smallest group whose
// types include all of its own, when loading the group's examples would
// cost more than its cases' queries cost over the other group's extra
// examples: the answer to a case depends only on the examples of the types
// it can see, and the others are then only more resources it must not
// return. So the DiagnosticReports, which four groups see, are loaded
// into fewer stores, and the stores are fewer. size gives a group's number
// of example files and their bytes. The groups' order is kept; emptied
// groups are dropped.
func shareStores(groups []searchGroup, size func(searchGroup) (docs, bodyBytes int64)) []searchGroup {
	// What loading an example costs, in scans of one stored example by
	// a query: the server parses, checks and indexes it, the store encodes
	// and inserts it (on FerretDB v1 some four scans' worth, more for a
	// large body); a case is a query or two.
	load := func(g searchGroup) int64 { n, b := size(g); return 6*n + b/4000 }
	scan := func(g searchGroup) int64 { n, b := size(g); return n + b/100000 }
	covers := func(big, small searchGroup) bool {
		if big.types == nil || small.types == nil {
			return big.types == nil && small.types != nil
		}
		for _, typ := range small.types {
			if !slices.Contains(big.types, typ) {
				return false
			}
		}
		return len(big.types) > len(small.types)
	}
	order := make([]int, len(groups))
	for i := range order {
		order[i] = i
	}
	// Smallest first, so that a group passes on what it took in.
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(scan(groups[a]), scan(groups[b])) })
	for _, i := range order {
		g := groups[i]
		into := -1
		for j, h := range groups {
			if len(h.cases) > 0 && covers(h, g) && (into < 0 || scan(h) < scan(groups[into])) {
				into = j
			}
		}
		if into < 0 {
			continue
		}
		queries := int64(len(g.cases)) * 3 / 2
		if queries*(scan(groups[into])-scan(g)) < load(g) {
			groups[into].cases = append(groups[into].cases, g.cases...)
			groups[i].cases = nil
		}
	}
	return slices.DeleteFunc(groups, func(g searchGroup) bool { return len(g.cases) == 0 })
}

// runSearchCases runs cases as subtests of t against the server c, two at a
// time: they only read, and on a backend that works for every query
// (FerretDB decodes the whole collection) one group's queries then keep
// two CPUs busy. The subtests are started from goroutines rather than made
// parallel, so that a group's cases run as soon as it is loaded instead of
// queueing behind every other group's for go test's -parallel slots.
func runSearchCases(t *testing.T, c *Client, cases []SearchCase) {
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for _, tc := range cases {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			runSearchCase(t, c, tc)
		})
	}
	wg.Wait()
}

// runSearchCase runs one case as a subtest of t against the server c.
func runSearchCase(t *testing.T, c *Client, tc SearchCase) {
	t.Run(tc.Name, func(t *testing.T) {
		r := c.Do("GET", "/"+tc.Query, nil)
		want := tc.Status
		if want == 0 {
			want = 200
		}
		if r.Status != want {
			t.Fatalf("%s: status %d, want %d; %.300s\nwhy: %s", tc.Query, r.Status, want, r.Body, tc.Why)
		}
		if want != 200 {
			return
		}
		m := r.JSON(t)
		var match, incl []string
		for _, e := range asList(m["entry"]) {
			e := e.(map[string]any)
			res := e["resource"].(map[string]any)
			id := fmt.Sprintf("%s/%s", res["resourceType"], res["id"])
			s, _ := e["search"].(map[string]any)
			switch {
			case s != nil && s["mode"] == "include":
				incl = append(incl, id)
			case s != nil && s["mode"] == "outcome":
			default:
				match = append(match, id)
			}
		}
		got, wantIDs := match, append([]string(nil), tc.Want...)
		if !tc.Ordered {
			sort.Strings(got)
			sort.Strings(wantIDs)
		}
		if fmt.Sprint(got) != fmt.Sprint(wantIDs) {
			t.Errorf("%s\n got %v\nwant %v\nwhy: %s", tc.Query, got, wantIDs, tc.Why)
		}
		sort.Strings(incl)
		wantIncl := append([]string(nil), tc.Include...)
		sort.Strings(wantIncl)
		if fmt.Sprint(incl) != fmt.Sprint(wantIncl) {
			t.Errorf("%s: included\n got %v\nwant %v\nwhy: %s", tc.Query, incl, wantIncl, tc.Why)
		}
		if tc.Total != -1 {
			total, ok := m["total"].(float64)
			if !ok || int(total) != tc.Total {
				t.Errorf("%s: total %v, want %d", tc.Query, m["total"], tc.Total)
			}
		}
	})
}

// searchGroup is cases that run over one store holding the examples of types.
type searchGroup struct {
	types []string // sorted; nil for every type
	cases []SearchCase
}

// typeSet is types as loadExamples takes them.
func (g searchGroup) typeSet() map[string]bool {
	if g.types == nil {
		return nil
	}
	m := map[string]bool{}
	for _, typ := range g.types {
		m[typ] = true
	}
	return m
}

// searchCaseGroups groups SearchCases by the set of types each can see, in
// the order of their first case.
func searchCaseGroups(t *testing.T) []searchGroup {
	t.Helper()
	codec, engine := codecAndEngine(t)
	refs := &refTargets{t: t, engine: engine, seen: map[string][]string{}}
	var groups []searchGroup
	at := map[string]int{}
	for _, tc := range SearchCases {
		types := caseTypes(tc, codec, refs)
		key := strings.Join(types, "+")
		if types == nil {
			key = "*"
		}
		i, ok := at[key]
		if !ok {
			i = len(groups)
			at[key] = i
			groups = append(groups, searchGroup{types: types})
		}
		groups[i].cases = append(groups[i].cases, tc)
	}
	return groups
}

// caseTypes returns, sorted, the resource types whose examples can change
// the answer to tc (the status, matches, includes and total), or nil for
// every type (a search of the whole system without _type):
//   - the searched type (or the _type list), and the types of the expected
//     matches and includes (an expected resource that is not loaded fails
//     the case rather than passing it wrongly, but loading it keeps the
//     failure to the point);
//   - the source types of _include, _revinclude and _has;
//   - the types that the examples point to through each reference parameter
//     that a chain or an _include follows, at every step of the chain: all
//     of them, whatever type the query restricts the step to, so that a
//     server that ignored the restriction would find resources to include or
//     chain through wrongly, as it would over all the examples.
//
// A resource type inside a value (a token system
// http://terminology.hl7.org/CodeSystem/..., a _profile canonical, a
// reference by absolute URL, Observation in StructureDefinition?type=...)
// is compared as text and reads nothing.
func caseTypes(tc SearchCase, codec *fhir.Codec, refs *refTargets) []string {
	set := map[string]bool{}
	add := func(typ string) {
		if codec.IsResourceType(typ) {
			set[typ] = true
		}
	}
	path, raw, _ := strings.Cut(tc.Query, "?")
	base, _, _ := strings.Cut(path, "/")
	// A malformed query (an error case) is read as far as it parses.
	params, _ := url.ParseQuery(raw)
	bases := []string{base}
	if !codec.IsResourceType(base) {
		if params["_type"] == nil {
			return nil
		}
		bases = nil
		for _, v := range params["_type"] {
			bases = append(bases, strings.Split(v, ",")...)
		}
	}
	for _, typ := range bases {
		add(typ)
	}
	for _, id := range append(slices.Clone(tc.Want), tc.Include...) {
		typ, _, _ := strings.Cut(id, "/")
		add(typ)
	}
	for key, values := range params {
		name, _, _ := strings.Cut(key, ":")
		switch {
		case name == "_include":
			for _, v := range values {
				parts := strings.Split(v, ":")
				add(parts[0])
				if len(parts) > 1 {
					for _, typ := range refs.of(parts[0], parts[1]) {
						add(typ)
					}
				}
			}
		case name == "_revinclude":
			for _, v := range values {
				src, _, _ := strings.Cut(v, ":")
				add(src)
			}
		case name == "_has":
			// _has:Type:param:..., possibly nested.
			parts := strings.Split(key, ":")
			for i := 0; i+1 < len(parts); i++ {
				if parts[i] == "_has" {
					add(parts[i+1])
				}
			}
		case strings.Contains(key, "."):
			// param[:Type].param[:Type]...param: every step but the last
			// follows a reference.
			from := bases
			steps := strings.Split(key, ".")
			for _, step := range steps[:len(steps)-1] {
				param, _, _ := strings.Cut(step, ":")
				var next []string
				for _, typ := range from {
					next = append(next, refs.of(typ, param)...)
				}
				slices.Sort(next)
				next = slices.Compact(next)
				for _, typ := range next {
					add(typ)
				}
				from = next
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// refTargets finds the types that the examples of a type point to through
// a reference parameter, reading each type's examples once per parameter.
type refTargets struct {
	t      *testing.T
	engine *search.Engine
	seen   map[string][]string // "Type.param" -> sorted target types
}

func (r *refTargets) of(typ, param string) []string {
	key := typ + "." + param
	if targets, ok := r.seen[key]; ok {
		return targets
	}
	set := map[string]bool{}
	for _, f := range fhirtest.ExampleFiles(r.t, typ) {
		body, err := os.ReadFile(f)
		if err != nil {
			r.t.Fatal(err)
		}
		// An example the server rejects (excludedExamples) may not index;
		// it is not loaded either.
		entries, _ := r.engine.References(typ, body, param)
		for _, e := range entries {
			if e.System != "" {
				set[e.System] = true
			}
		}
	}
	targets := slices.Sorted(maps.Keys(set))
	r.seen[key] = targets
	return targets
}

// loadExamples PUTs the official examples (all but excludedExamples, which
// the server must reject) of types (every type when nil), four at a time,
// into the fresh store st behind c.
func loadExamples(t *testing.T, c *Client, st *loading, types map[string]bool) {
	t.Helper()
	start := time.Now()
	var load []string
	for _, f := range fhirtest.ExampleFiles(t, "") {
		typ, _, _ := strings.Cut(filepath.Base(f), "-")
		if types == nil || types[typ] {
			load = append(load, f)
		}
	}
	sortBySize(t, load)
	work := make(chan string)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var problems []string
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				body, err := os.ReadFile(f)
				if err != nil {
					mu.Lock()
					problems = append(problems, err.Error())
					mu.Unlock()
					continue
				}
				var head struct{ ResourceType, ID string }
				_ = json.Unmarshal(body, &head)
				st.announce(head.ResourceType, head.ID)
				r := c.Do("PUT", "/"+head.ResourceType+"/"+head.ID, body)
				_, excluded := excludedExamples[filepath.Base(f)]
				if ok := r.Status == 200 || r.Status == 201; ok == excluded {
					mu.Lock()
					problems = append(problems, fmt.Sprintf("%s: %d (excluded: %v) %.200s", filepath.Base(f), r.Status, excluded, r.Body))
					mu.Unlock()
				}
			}
		}()
	}
	for _, f := range load {
		work <- f
	}
	close(work)
	wg.Wait()
	if len(problems) > 0 {
		t.Fatalf("loading the examples (the data the cases assume):\n%s", strings.Join(problems, "\n"))
	}
	t.Logf("loaded %d example files in %v", len(load), time.Since(start).Round(time.Millisecond))
}

// sortBySize sorts files smallest first. Where a lookup reads the documents
// stored before the one it finds (FerretDB v1 scans for an _id), each file
// then costs what the smaller files before it hold, and the few large ones
// (a StructureDefinition of 1.2 MB) go last.
func sortBySize(t *testing.T, files []string) {
	t.Helper()
	size := map[string]int64{}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		size[f] = fi.Size()
	}
	slices.SortStableFunc(files, func(a, b string) int { return cmp.Compare(size[a], size[b]) })
}

// openLoading gives a test a fresh store, wrapped for loading, behind a
// fresh server.
func openLoading(t *testing.T, newStore NewStore) (*Client, *loading) {
	t.Helper()
	st := newLoading(newStore(t))
	t.Cleanup(func() { st.Close() })
	return Serve(t, st), st
}

// loading is a fresh store into which each example is PUT once. The server
// reads the current version of a resource before it writes it; after
// announce(typ, id), the first Read of typ/id answers store.ErrNotFound
// without asking the store, which could answer nothing else: the store was
// empty and nothing has written typ/id yet. Everything else goes to the
// store. On FerretDB v1 that miss reads every document stored so far (its
// _id lookup uses no index), so loading was quadratic in the number of
// files: the 1,400 SearchParameters took 2 minutes and more. What the server
// does on a real miss is the REST suite's to check.
type loading struct {
	store.Store
	mu        sync.Mutex
	announced map[string]bool // typ/id announced; true until its first Read
}

func newLoading(st store.Store) *loading {
	return &loading{Store: st, announced: map[string]bool{}}
}

// announce says that typ/id is about to be written for the first time. A
// second announcement of the same resource changes nothing.
func (l *loading) announce(typ, id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, seen := l.announced[typ+"/"+id]; !seen {
		l.announced[typ+"/"+id] = true
	}
}

// Read answers the first Read of an announced resource with ErrNotFound, and
// every other from the store.
func (l *loading) Read(ctx context.Context, a store.Access, typ, id string) (*store.Version, error) {
	l.mu.Lock()
	first := l.announced[typ+"/"+id]
	if first {
		l.announced[typ+"/"+id] = false
	}
	l.mu.Unlock()
	if first {
		return nil, fmt.Errorf("resttest: %s/%s is not written yet: %w", typ, id, store.ErrNotFound)
	}
	return l.Store.Read(ctx, a, typ, id)
}

// Put ends the announcement of what it writes, should the server write
// without reading first, and stores.
func (l *loading) Put(ctx context.Context, w store.Write) error {
	l.mu.Lock()
	if l.announced[w.Version.Type+"/"+w.Version.ID] {
		l.announced[w.Version.Type+"/"+w.Version.ID] = false
	}
	l.mu.Unlock()
	return l.Store.Put(ctx, w)
}
