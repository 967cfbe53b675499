package bundle

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/jsonscan"
	"github.com/fmtbank/cmts/fhir/search"
	"github.com/fmtbank/cmts/store"
)

// Indexer computes search index entries and compiles conditions;
// search.Engine implements it.
type Indexer interface {
	Entries(resourceType string, body []byte) ([]store.IndexEntry, error)
	Compile(resourceType string, params url.Values) (store.Expr, error)
}

// Store is what the writer needs of the store; store.Store has it.
type Store interface {
	Read(ctx context.Context, a store.Access, typ, id string) (*store.Version, error)
	Transact(ctx context.Context, conds []store.Query, decide func(matches [][]*store.Version) ([]store.Write, error)) error
}

// SeqStore is a Store that can store the writes of a transaction as they
// are made, beginning with the first while later ones are still being
// built (store/sqlite and store/mongo have it): building a write (marshal,
// validate, index) and storing one then overlap, on different cores, and
// the writes stored need not be held.
type SeqStore interface {
	// TransactSeq is Transact for writes made one by one: with the
	// matches of conds (searched as Transact does, under the lock that
	// holds until the commit), it stores every write writes(matches)
	// yields, all or none; an error yielded, or an error storing one,
	// stores none. It stops pulling writes at the first error.
	TransactSeq(ctx context.Context, conds []store.Query, writes func(matches [][]*store.Version) iter.Seq2[store.Write, error]) error
}

// OrderedIDStore is a Store whose writes are cheaper when new ids sort in
// the order they are made (store/sqlite, whose tables and indexes are
// B-trees: random ids put each create on a page of its own in four of
// them). A store that spreads writes by id (MongoDB's shard key) does not
// implement it, and gets random ids.
type OrderedIDStore interface {
	OrderedIDs() bool
}

// WantsOrderedIDs reports whether s is an OrderedIDStore that asks for
// ordered ids.
func WantsOrderedIDs(s any) bool {
	o, ok := s.(OrderedIDStore)
	return ok && o.OrderedIDs()
}

// Options configure a Writer. Store, Codec and Indexer are required.
type Options struct {
	Store   Store
	Codec   *fhir.Codec
	Indexer Indexer
	// Validator, when set, checks every resource written against the
	// profiles it claims (an error issue refuses the write: 422).
	Validator fhir.Validator
	// Now is the clock (default time.Now).
	Now func() time.Time
	// MaxBody bounds what a JSON Patch may make (default 16 MiB).
	MaxBody int64
	// PatchOps bounds the operations of one JSON Patch (default
	// fhir.DefaultPatchOps).
	PatchOps int
	// Auditor, when set, records every write in the same store
	// transaction as its data.
	Auditor Auditor
	// Guard, when set, decides every version before it is stored, with the
	// version it replaces: the access policy (a transaction with one
	// refused entry is refused whole).
	Guard Guard
}

// Guard decides whether a principal may store a version; fhir.Policy has it.
type Guard interface {
	// Allow refuses (with a FHIR error) or allows an interaction on a type,
	// before anything is read.
	Allow(p *fhir.Principal, a fhir.Action, typ string) error
	// Writable refuses (with a FHIR error) or allows storing next after cur
	// (nil: none); it may set next.Reach.
	Writable(p *fhir.Principal, cur, next *store.Version) error
}

// Writer carries out the write interactions of FHIR (create, update, patch,
// delete, each conditional or not) for a REST request or for the entries of
// a transaction: one implementation of their rules, stored through one
// atomic store write. A REST write is a transaction of one entry.
type Writer struct {
	opts Options
	// newID makes the ids the server assigns (NewID, or NewOrderedID
	// for an OrderedIDStore).
	newID func() string
}

// NewWriter checks the options.
func NewWriter(opts Options) (*Writer, error) {
	switch {
	case opts.Store == nil:
		return nil, errors.New("bundle: no store")
	case opts.Codec == nil:
		return nil, errors.New("bundle: no codec")
	case opts.Indexer == nil:
		return nil, errors.New("bundle: no indexer")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = 16 << 20
	}
	if opts.PatchOps <= 0 {
		opts.PatchOps = fhir.DefaultPatchOps
	}
	w := &Writer{opts: opts, newID: NewID}
	if WantsOrderedIDs(opts.Store) {
		w.newID = func() string { return NewOrderedID(opts.Now()) }
	}
	return w, nil
}

// Result is what one write entry did.
type Result struct {
	// Status is the entry's HTTP status: 201 created, 200 updated (or a
	// match found by ifNoneExist, or a patch that changed nothing), 204
	// deleted.
	Status int
	// Version is the version written or found; for a delete, the tombstone
	// (or the earlier one when already deleted); nil when a conditional
	// delete matched nothing.
	Version *store.Version
	Message fhir.Message
	// Unchanged reports that the entry stored nothing because the resource
	// was the current version already (KeepUnchanged, or a patch that
	// changed nothing).
	Unchanged bool
}

// EntryError is the failure of one entry: Index is its position in the
// request, Err its FHIR error.
type EntryError struct {
	Index int
	Err   error
}

func (e *EntryError) Error() string { return "entry " + strconv.Itoa(e.Index) + ": " + e.Err.Error() }
func (e *EntryError) Unwrap() error { return e.Err }

var (
	msgCreated      = fhir.Message{EN: "Created", ZH: "已创建"}
	msgUpdated      = fhir.Message{EN: "Updated", ZH: "已更新"}
	msgDeleted      = fhir.Message{EN: "Deleted", ZH: "已删除"}
	msgExists       = fhir.Message{EN: "A matching resource exists already; nothing was created", ZH: "已存在匹配的资源，未新建"}
	msgUnchanged    = fhir.Message{EN: "The patch changes nothing; no new version was made", ZH: "补丁未改变资源，未生成新版本"}
	msgUnchangedPut = fhir.Message{EN: "The resource is unchanged; no new version was made", ZH: "资源未改变，未生成新版本"}
	msgNoMatch      = fhir.Message{EN: "No resource matches the criteria; nothing was deleted", ZH: "没有匹配条件的资源，未删除任何资源"}
)

// idPattern is the R4 id datatype.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// CheckID refuses what is not an R4 id, and "." and "..", which are valid by
// the pattern but are path segments: a Location such as
// Patient/../_history/3 would point elsewhere.
func CheckID(id string) error {
	if !idPattern.MatchString(id) || strings.Trim(id, ".") == "" {
		return fhir.Invalid(fhir.IssueValue, "The id '"+id+"' is not a valid FHIR id (A-Z a-z 0-9 - . up to 64)",
			"id '"+id+"' 不是合法的 FHIR id（仅限 A-Z a-z 0-9 - .，最长 64 位）").WithExpression("id")
	}
	return nil
}

// NewID makes a server-assigned id: 128 random bits, hex.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// NewOrderedID makes a server-assigned id that sorts after those made
// before now's millisecond: 48 bits of Unix milliseconds, then 80 random
// bits, hex (32 digits, as NewID). Like a UUIDv7 it tells when it was
// made, which the resource's meta.lastUpdated tells anyway.
func NewOrderedID(now time.Time) string {
	var b [16]byte
	ms := uint64(now.UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	_, _ = rand.Read(b[6:])
	return hex.EncodeToString(b[:])
}

// plan is what the writer knows of one entry before the store is asked.
type plan struct {
	e   *Entry
	res *fhir.Resource // POST, PUT: the parsed resource
	ops patchOps       // PATCH
	// cond is the index of the entry's condition in conds (-1: none).
	cond int
	// bodyID is a conditional update's resource id read from its JSON
	// before it is parsed (stream).
	bodyID string
	// Filled in by decide:
	id     string
	cur    *store.Version
	result *Result
}

// Write carries out entries (POST, PUT, PATCH, DELETE) for p as one
// transaction: every entry's write is stored, or none. fullUrls of created
// resources and conditional references ("Patient?identifier=...") are
// resolved and rewritten in every resource, as R4 http.html#trules says.
// Results are in the order of entries. A failure is an *EntryError naming
// the entry, wrapping a *fhir.Error (or a store error).
func (w *Writer) Write(ctx context.Context, p *fhir.Principal, entries []*Entry) ([]*Result, error) {
	if results, ok, err := w.streamed(ctx, p, entries, true); ok || err != nil {
		return results, err
	}
	return w.writeAll(ctx, p, entries)
}

// writeAll is Write holding every entry at once: each resource parsed
// before the store is asked, every write built before it stores any.
//
// A large transaction (minStream entries) on a store without TransactSeq is
// planned as stream plans it, when it can be (planStream), and each
// resource parsed only when its write is built, so that at most the
// entries being built hold their parsed resources (some fifteen times
// their JSON each), not all of them at once.
func (w *Writer) writeAll(ctx context.Context, p *fhir.Principal, entries []*Entry) ([]*Result, error) {
	var sp *txPlan
	if _, seq := w.opts.Store.(SeqStore); !seq && len(entries) >= minStream {
		s, ok, err := w.planStream(p, entries)
		if err != nil {
			return nil, err
		}
		if ok {
			sp = s
		}
	}
	parsed := sp == nil
	if parsed {
		s, err := w.planParsed(p, entries)
		if err != nil {
			return nil, err
		}
		sp = s
	}
	plans := sp.plans
	now := w.opts.Now().UTC().Truncate(time.Microsecond)
	var results []*Result
	err := w.opts.Store.Transact(ctx, sp.conds, func(matches [][]*store.Version) ([]store.Write, error) {
		writes, err := w.decide(ctx, p, plans, sp.refs, matches, now, parsed)
		if err != nil {
			return nil, err
		}
		results = make([]*Result, len(plans))
		for i, pl := range plans {
			results[i] = pl.result
		}
		if w.opts.Auditor != nil {
			audits, err := w.opts.Auditor.AuditWrites(ctx, p, now, entries, results)
			if err != nil {
				return nil, err
			}
			writes = append(writes, audits...)
		}
		return writes, nil
	})
	if err != nil {
		var ee *EntryError
		if errors.As(err, &ee) {
			return nil, err
		}
		if errors.Is(err, store.ErrConflict) {
			return nil, conflict(plans, err)
		}
		return nil, err
	}
	return results, nil
}

// planParsed plans entries with their resources parsed, on every core,
// before the store is asked.
func (w *Writer) planParsed(p *fhir.Principal, entries []*Entry) (*txPlan, error) {
	parsed, err := w.parseAll(entries)
	if err != nil {
		return nil, err
	}
	sp := &txPlan{plans: make([]*plan, len(entries))}
	for i, e := range entries {
		pl, err := w.prepare(p, e, parsed[i], &sp.conds)
		if err != nil {
			return nil, &EntryError{Index: e.Index, Err: err}
		}
		sp.plans[i] = pl
	}
	if sp.refs, err = w.conditionalReferences(p, sp.plans, &sp.conds); err != nil {
		return nil, err
	}
	return sp, nil
}

// conflict explains a store conflict: a create whose id another tenant (or
// a racing request) holds cannot succeed by retrying; anything else lost a
// race and may be retried.
func conflict(plans []*plan, err error) error {
	if len(plans) == 1 && plans[0].result != nil && plans[0].result.Status == http.StatusCreated {
		pl := plans[0]
		return &EntryError{Index: pl.e.Index, Err: fhir.Conflict(
			"The id '"+pl.id+"' is not available for a new "+pl.e.Type+"; use another id",
			"id '"+pl.id+"' 不可用于新建 "+pl.e.Type+"，请使用其他 id").WithExpression(pl.e.Type + ".id")}
	}
	e := fhir.AsError(err)
	return e
}

// parse parses and validates e's resource.
func (e *Entry) parse(c *fhir.Codec) (*fhir.Resource, error) {
	if e.scanned {
		return c.ParseScanned(e.Resource)
	}
	if e.validJSON {
		return c.ParseValid(e.Resource)
	}
	return c.Parse(e.Resource)
}

// parseAll parses the resources of POST and PUT entries, on every core:
// parsing and validating R4 is most of a write's CPU work, and it happens
// before any lock is taken.
func (w *Writer) parseAll(entries []*Entry) ([]*fhir.Resource, error) {
	out := make([]*fhir.Resource, len(entries))
	errs := make([]error, len(entries))
	forEach(len(entries), func(i int) {
		if e := entries[i]; e.Method == http.MethodPost || e.Method == http.MethodPut {
			out[i], errs[i] = e.parse(w.opts.Codec)
		}
	})
	for i, err := range errs {
		if err != nil {
			return nil, &EntryError{Index: entries[i].Index, Err: err}
		}
	}
	return out, nil
}

// forEach calls f(i) for every i in [0, n), on every core when n is large
// enough for that to pay (f of different i must not share what they
// change).
func forEach(n int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n/16)
	if workers <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				f(i)
			}
		})
	}
	wg.Wait()
}

// prepare checks an entry (res: its parsed resource, if it has one), adding
// its condition to conds.
func (w *Writer) prepare(p *fhir.Principal, e *Entry, res *fhir.Resource, conds *[]store.Query) (*plan, error) {
	pl, err := w.newPlan(p, e)
	if err != nil {
		return nil, err
	}
	if e.Method == http.MethodPost || e.Method == http.MethodPut {
		if err := checkResource(e, res); err != nil {
			return nil, err
		}
		pl.res = res
	}
	if err := w.entryCondition(p, pl, conds); err != nil {
		return nil, err
	}
	return pl, nil
}

// entryCondition adds the condition of an entry's own interaction
// (ifNoneExist, a conditional update or delete), if it has one, to conds.
func (w *Writer) entryCondition(p *fhir.Principal, pl *plan, conds *[]store.Query) error {
	e := pl.e
	var params url.Values
	switch {
	case e.Method == http.MethodPost && e.IfNoneExist != "":
		v, err := search.ParseQuery(strings.TrimPrefix(e.IfNoneExist, e.Type+"?")).Condition()
		if err != nil {
			return err
		}
		params = v
	case e.ID == "" && (e.Method == http.MethodPut || e.Method == http.MethodDelete):
		params = e.Query
	}
	if params == nil {
		return nil
	}
	q, err := w.condition(p, e.Type, params)
	if err != nil {
		return err
	}
	pl.cond = len(*conds)
	*conds = append(*conds, q)
	return nil
}

// resourceID is the id of the entry's resource: that of the parsed
// resource, or before it is parsed, the one read from its JSON.
func (pl *plan) resourceID() string {
	if pl.res != nil {
		return pl.res.ID()
	}
	return pl.bodyID
}

// newPlan checks what an entry asks before its resource is read: the
// guard's leave, the URL's id, the method, a PATCH's patch.
func (w *Writer) newPlan(p *fhir.Principal, e *Entry) (*plan, error) {
	pl := &plan{e: e, cond: -1}
	if w.opts.Guard != nil {
		if err := w.opts.Guard.Allow(p, fhir.ActionOf(e.Method), e.Type); err != nil {
			return nil, err
		}
	}
	if e.ID != "" {
		if err := CheckID(e.ID); err != nil {
			return nil, err
		}
	}
	switch e.Method {
	case http.MethodPost, http.MethodPut, http.MethodDelete:
	case http.MethodPatch:
		ops, err := w.patchOf(e)
		if err != nil {
			return nil, err
		}
		pl.ops = ops
	default:
		return nil, fhir.MethodNotAllowed(e.Method, e.URL)
	}
	return pl, nil
}

// checkResource checks a POST or PUT entry's parsed resource against its
// URL: the type, and a PUT's id.
func checkResource(e *Entry, res *fhir.Resource) error {
	if res.Type != e.Type {
		return fhir.Invalid(fhir.IssueInvalid, "The resource is a "+res.Type+" but the URL is for "+e.Type,
			"资源类型 "+res.Type+" 与 URL 中的类型 "+e.Type+" 不一致").WithExpression("resourceType")
	}
	if e.Method == http.MethodPut && e.ID != "" && res.ID() != e.ID {
		return fhir.Invalid(fhir.IssueInvalid, "The resource id '"+res.ID()+"' does not match the URL id '"+e.ID+"'",
			"资源 id '"+res.ID()+"' 与 URL 中的 id '"+e.ID+"' 不一致").WithExpression(e.Type + ".id")
	}
	return nil
}

// access is what the principal's reads of the store (current versions,
// conditions) may see; its writes are its tenant's (Version.Tenant).
func access(p *fhir.Principal) store.Access { return store.Tenant(p.Tenant) }

// condition compiles a conditional interaction's criteria (strictly: an
// unknown parameter is an error) into the store query of its matches, at
// most two: enough to tell none, one or many.
func (w *Writer) condition(p *fhir.Principal, typ string, params url.Values) (store.Query, error) {
	filter, err := w.opts.Indexer.Compile(typ, params)
	if err != nil {
		return store.Query{}, err
	}
	if filter == nil {
		return store.Query{}, fhir.PreconditionFailed("A conditional interaction needs search criteria", "条件操作必须提供检索条件")
	}
	return store.Query{Access: access(p), Type: typ, Filter: filter, Count: 2}, nil
}

// patchOf reads an entry's JSON Patch: the REST body, or in a bundle a
// Binary of content type application/json-patch+json.
func (w *Writer) patchOf(e *Entry) (patchOps, error) {
	body := e.Patch
	if body == nil {
		var bin struct {
			ResourceType string `json:"resourceType"`
			ContentType  string `json:"contentType"`
			Data         string `json:"data"`
		}
		if err := json.Unmarshal(e.Resource, &bin); err != nil || bin.ResourceType != "Binary" || bin.ContentType != "application/json-patch+json" {
			return nil, fhir.Invalid(fhir.IssueNotSupported, "A PATCH entry takes a Binary of content type application/json-patch+json",
				"PATCH 条目须为 contentType 为 application/json-patch+json 的 Binary").WithExpression("resource")
		}
		data, err := base64.StdEncoding.DecodeString(bin.Data)
		if err != nil {
			return nil, fhir.Invalid(fhir.IssueValue, "The Binary's data is not base64", "Binary.data 不是合法的 base64").WithExpression("resource.data")
		}
		body = data
	}
	return decodePatch(body, w.opts.PatchOps)
}

// condRef is a conditional reference and the index of its condition.
type condRef struct {
	ref  string
	cond int
}

// conditionalReferences adds a condition for each distinct conditional
// reference ("Patient?identifier=s|v") in the entries' resources.
func (w *Writer) conditionalReferences(p *fhir.Principal, plans []*plan, conds *[]store.Query) ([]condRef, error) {
	var out []condRef
	seen := map[string]bool{}
	for _, pl := range plans {
		// A conditional reference holds a '?', which the received JSON
		// shows (mayHaveQuery): most resources hold none, and their
		// references are not walked.
		if pl.res == nil || !mayHaveQuery(pl.e.Resource) {
			continue
		}
		for _, ref := range pl.res.References() {
			typ, raw, ok := strings.Cut(ref, "?")
			if !ok || seen[ref] || strings.Contains(typ, "/") || strings.Contains(typ, ":") {
				continue
			}
			seen[ref] = true
			q, err := w.referenceCondition(p, typ, raw)
			if err != nil {
				return nil, &EntryError{Index: pl.e.Index, Err: err}
			}
			out = append(out, condRef{ref: ref, cond: len(*conds)})
			*conds = append(*conds, q)
		}
	}
	return out, nil
}

// referenceCondition compiles the condition of a conditional reference
// typ?query.
func (w *Writer) referenceCondition(p *fhir.Principal, typ, query string) (store.Query, error) {
	if !w.opts.Codec.IsResourceType(typ) {
		return store.Query{}, fhir.Invalid(fhir.IssueInvalid,
			"The conditional reference '"+typ+"?"+query+"' does not name a resource type", "条件引用 '"+typ+"?"+query+"' 未指明资源类型")
	}
	params, err := search.ParseQuery(query).Condition()
	if err != nil {
		return store.Query{}, err
	}
	return w.condition(p, typ, params)
}

// decide runs inside the store's transaction, with the matches of every
// condition: it chooses each entry's target, resolves references, checks
// preconditions against current versions and builds the writes.
//
// Unless parsed, the plans' resources are not parsed yet: each is parsed as
// its write is built (buildStreamed), as stream does.
func (w *Writer) decide(ctx context.Context, p *fhir.Principal, plans []*plan, refs []condRef, matches [][]*store.Version, now time.Time, parsed bool) ([]store.Write, error) {
	to, err := w.targets(ctx, p, plans, matches, parsed)
	if err == nil {
		err = resolveReferences(to, refs, matches)
	}
	if err != nil {
		return nil, err
	}
	build := w.build
	if !parsed {
		build = w.buildStreamed
	}
	// Building a write (marshalling, validating, indexing) is most of the
	// CPU work after parsing; each entry's is its own.
	built := make([]*store.Write, len(plans))
	errs := make([]error, len(plans))
	forEach(len(plans), func(i int) {
		built[i], errs[i] = build(ctx, plans[i], p, to, now)
		// decide is called once: the parsed resource (some fifteen times
		// its JSON) is not needed again, while the store, maybe slow,
		// writes what was built.
		plans[i].res = nil
	})
	var writes []store.Write
	for i, pl := range plans {
		if errs[i] != nil {
			return nil, &EntryError{Index: pl.e.Index, Err: errs[i]}
		}
		if built[i] != nil {
			writes = append(writes, *built[i])
		}
	}
	return writes, nil
}

// minStream is the fewest entries a transaction streams to a SeqStore
// (where building them starts to use every core, see forEach): a smaller
// one is stored through Transact, in a transaction it may share with
// concurrent writes (and their fsync).
const minStream = 32

// window bounds how far building runs ahead of storing in stream: an
// entry built and not yet stored holds its parsed resource, its body and
// its index entries (about fifteen times the size of its JSON), so a
// transaction of any size holds at most this many, enough to keep a few
// cores building while the store writes.
const window = 128

// txPlan is what Write knows of a transaction's entries before the store
// is asked: each entry's plan, and the conditions (the entries' own,
// then one per distinct conditional reference) with refs saying which is
// whose.
type txPlan struct {
	plans []*plan
	conds []store.Query
	refs  []condRef
}

// streamed carries out entries by stream when it can: a transaction of
// minStream entries or more on a store that has TransactSeq, whose
// conditions are known without parsing its resources (planStream). ok is
// false when it cannot (then nothing was done).
func (w *Writer) streamed(ctx context.Context, p *fhir.Principal, entries []*Entry, bodies bool) (results []*Result, ok bool, err error) {
	seq, ok := w.opts.Store.(SeqStore)
	if !ok || len(entries) < minStream {
		return nil, false, nil
	}
	sp, ok, err := w.planStream(p, entries)
	if !ok || err != nil {
		return nil, false, err
	}
	results, err = w.stream(ctx, seq, p, sp, bodies)
	return results, true, err
}

// planStream plans entries without parsing their resources: the
// conditional references are read from the JSON in place, as is a
// conditional update's id. ok is false when a resource is in doubt (see
// conditionalReferencesIn), and so must be parsed before the transaction
// begins.
func (w *Writer) planStream(p *fhir.Principal, entries []*Entry) (sp *txPlan, ok bool, err error) {
	sp = &txPlan{plans: make([]*plan, len(entries))}
	seen := map[string]bool{}
	for i, e := range entries {
		pl, err := w.newPlan(p, e)
		if err != nil {
			return nil, false, &EntryError{Index: e.Index, Err: err}
		}
		sp.plans[i] = pl
		if e.Method == http.MethodPut && e.ID == "" {
			if pl.bodyID, ok = topLevelID(e.Resource); !ok {
				return nil, false, nil
			}
		}
		if err := w.entryCondition(p, pl, &sp.conds); err != nil {
			return nil, false, &EntryError{Index: e.Index, Err: err}
		}
		if e.Method != http.MethodPost && e.Method != http.MethodPut {
			continue
		}
		refs, ok := conditionalReferencesIn(e.Resource)
		if !ok {
			return nil, false, nil
		}
		for _, ref := range refs {
			if seen[ref] {
				continue
			}
			seen[ref] = true
			typ, query, _ := strings.Cut(ref, "?")
			q, err := w.referenceCondition(p, typ, query)
			if err != nil {
				return nil, false, &EntryError{Index: e.Index, Err: err}
			}
			sp.refs = append(sp.refs, condRef{ref: ref, cond: len(sp.conds)})
			sp.conds = append(sp.conds, q)
		}
	}
	return sp, true, nil
}

// mayHaveQuery reports whether a resource, as JSON, may hold a '?' (maybe
// escaped): without one, it holds no conditional reference.
func mayHaveQuery(raw []byte) bool {
	return bytes.IndexByte(raw, '?') >= 0 || bytes.Contains(raw, []byte(`\u003`))
}

// conditionalReferencesIn lists the conditional references
// ("Patient?identifier=...") in a resource, as JSON: the values of the
// "reference" members anywhere in it (Reference.reference, in nested
// elements, extensions and contained resources alike) that are. It reads
// the JSON in place, without parsing the resource; sure is false when in
// doubt (malformed or deeply nested JSON, an escaped key, which might spell
// "reference"), and then the resource must be parsed to know.
func conditionalReferencesIn(raw []byte) (refs []string, sure bool) {
	if !mayHaveQuery(raw) {
		return nil, true
	}
	var value func(at, depth int) (int, error)
	value = func(at, depth int) (int, error) {
		if depth > 64 {
			return 0, jsonscan.ErrSyntax
		}
		switch raw[at] {
		case '{':
			return jsonscan.Object(raw, at, func(key []byte, at int) (int, error) {
				if string(key) == "reference" && raw[at] == '"' {
					ref, next, err := jsonscan.String(raw, at)
					if isConditionalReference(ref) && !slices.Contains(refs, ref) {
						refs = append(refs, ref)
					}
					return next, err
				}
				if bytes.IndexByte(key, '\\') >= 0 {
					return 0, jsonscan.ErrSyntax
				}
				return value(at, depth+1)
			})
		case '[':
			return jsonscan.Array(raw, at, func(at int) (int, error) { return value(at, depth+1) })
		}
		return jsonscan.SkipValue(raw, at)
	}
	i := jsonscan.SkipWS(raw, 0)
	if i >= len(raw) {
		return nil, false
	}
	if _, err := value(i, 0); err != nil {
		return nil, false
	}
	return refs, true
}

// topLevelID reads a resource's id ("" for none) from its JSON in place;
// sure is false when in doubt (malformed JSON, an escaped key).
func topLevelID(raw []byte) (id string, sure bool) {
	i := jsonscan.SkipWS(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return "", false
	}
	_, err := jsonscan.Object(raw, i, func(key []byte, at int) (int, error) {
		if bytes.IndexByte(key, '\\') >= 0 {
			return 0, jsonscan.ErrSyntax
		}
		if string(key) == "id" && raw[at] == '"' {
			s, next, err := jsonscan.String(raw, at)
			id = s
			return next, err
		}
		return jsonscan.SkipValue(raw, at)
	})
	return id, err == nil
}

// isConditionalReference reports whether a reference is a search
// ("Patient?identifier=s|v") rather than a literal reference.
func isConditionalReference(ref string) bool {
	typ, _, ok := strings.Cut(ref, "?")
	return ok && !strings.Contains(typ, "/") && !strings.Contains(typ, ":")
}

// stream carries out a transaction on a SeqStore, as Write does, holding
// no more than a window of its entries at a time in their costly forms:
// once the store has the matches of the conditions (under its lock), every
// entry's target is chosen (so that a reference to any entry, earlier or
// later, is rewritten), then each entry's resource is parsed, checked, its
// current version read and its write built, on every core, at most window
// entries ahead of the store, which takes them in entry order; once
// stored, an entry keeps only its result, without index entries, and
// without the resource unless bodies is set. The audit records follow the
// data in the same transaction.
func (w *Writer) stream(ctx context.Context, st SeqStore, p *fhir.Principal, sp *txPlan, bodies bool) ([]*Result, error) {
	plans := sp.plans
	entries := make([]*Entry, len(plans))
	for i, pl := range plans {
		entries[i] = pl.e
	}
	now := w.opts.Now().UTC().Truncate(time.Microsecond)
	results := make([]*Result, len(plans))
	kept := make([]Result, len(plans))
	versions := make([]store.Version, len(plans))
	err := st.TransactSeq(ctx, sp.conds, func(matches [][]*store.Version) iter.Seq2[store.Write, error] {
		return func(yield func(store.Write, error) bool) {
			to, err := w.targets(ctx, p, plans, matches, false)
			if err == nil {
				err = resolveReferences(to, sp.refs, matches)
			}
			if err != nil {
				yield(store.Write{}, err)
				return
			}
			// The audit records are made as soon as the last entry is
			// built, while the store is still taking the entries before
			// it (a transaction's event names every version: for 1,000
			// entries, some 20 ms of indexing that the store's one writer
			// would otherwise wait for).
			audited := make(chan auditWrites, 1)
			audit := func() {
				var a auditWrites
				if w.opts.Auditor != nil {
					a.writes, a.err = w.opts.Auditor.AuditWrites(ctx, p, now, entries, results)
				}
				audited <- a
			}
			if len(plans) == 0 {
				audit()
			}
			var built atomic.Int64
			b := newBuilders(len(plans), func(i int) (*store.Write, error) {
				wr, err := w.buildStreamed(ctx, plans[i], p, to, now)
				if err != nil {
					return nil, err
				}
				results[i] = keep(plans[i].result, &kept[i], &versions[i], bodies)
				if built.Add(1) == int64(len(plans)) {
					go audit()
				}
				return wr, nil
			})
			defer b.close()
			for i, pl := range plans {
				wr, err := b.take(i)
				if err != nil {
					yield(store.Write{}, &EntryError{Index: pl.e.Index, Err: err})
					return
				}
				if wr != nil && !yield(*wr, nil) {
					return
				}
				// What the plan built is stored: only its result is needed.
				pl.res, pl.ops, pl.cur, pl.result = nil, nil, nil, nil
				b.done()
			}
			a := <-audited
			if a.err != nil {
				yield(store.Write{}, a.err)
				return
			}
			for _, aw := range a.writes {
				if !yield(aw, nil) {
					return
				}
			}
		}
	})
	if err != nil {
		var ee *EntryError
		if !errors.As(err, &ee) && errors.Is(err, store.ErrConflict) {
			return nil, conflict(plans, err)
		}
		return nil, err
	}
	return results, nil
}

// auditWrites is what an Auditor made of a transaction's entries.
type auditWrites struct {
	writes []store.Write
	err    error
}

// buildStreamed is build for stream, doing first what Write does for every
// entry before building: parse and check the resource (that a conditional
// update's id and conditional references are those planStream read from
// its JSON), read the current version unless the condition found it.
func (w *Writer) buildStreamed(ctx context.Context, pl *plan, p *fhir.Principal, to map[string]string, now time.Time) (*store.Write, error) {
	e := pl.e
	if e.Method == http.MethodPost || e.Method == http.MethodPut {
		res, err := e.parse(w.opts.Codec)
		if err != nil {
			return nil, err
		}
		if err := checkResource(e, res); err != nil {
			return nil, err
		}
		if err := checkPlanned(pl, res, to); err != nil {
			return nil, err
		}
		pl.res = res
	}
	if e.Method != http.MethodPost && pl.result == nil && pl.cur == nil {
		cur, err := w.current(ctx, p, e.Type, pl.id)
		if err != nil {
			return nil, err
		}
		pl.cur = cur
	}
	return w.build(ctx, pl, p, to, now)
}

// checkPlanned checks a parsed resource against what planStream read from
// its JSON: a conditional update's id, and every conditional reference
// (each one resolved in to). The JSON reader is exact for what the parser
// accepts, so this refuses nothing it read right; it keeps a reader's
// mistake from storing an unresolved reference.
func checkPlanned(pl *plan, res *fhir.Resource, to map[string]string) error {
	if pl.e.Method == http.MethodPut && pl.e.ID == "" && res.ID() != pl.bodyID {
		return fmt.Errorf("bundle: entry %d: the resource's id %q is not the %q read from its JSON", pl.e.Index, res.ID(), pl.bodyID)
	}
	if !mayHaveQuery(pl.e.Resource) {
		return nil
	}
	for _, ref := range res.References() {
		if _, ok := to[ref]; isConditionalReference(ref) && !ok {
			return fmt.Errorf("bundle: entry %d: the conditional reference %q was not read from its JSON", pl.e.Index, ref)
		}
	}
	return nil
}

// keep is what a result keeps once its write is stored, in r and v: the
// version without its index entries, and without its resource unless
// bodies is set.
func keep(res *Result, r *Result, v *store.Version, bodies bool) *Result {
	if res == nil {
		return nil
	}
	*r = *res
	if res.Version != nil {
		*v = *res.Version
		v.Index = nil
		if !bodies {
			v.Resource = nil
		}
		r.Version = v
	}
	return r
}

// builders build entries 0..n-1 on every core, in order, at most window
// ahead of the entry taken last.
type builders struct {
	slots []slot
	// free holds a token per slot not in use; the feeder takes one
	// before handing out an entry.
	free chan struct{}
	stop chan struct{}
	wg   sync.WaitGroup
}

// slot is where entry i (of those i with i%window equal) is built.
type slot struct {
	write *store.Write
	err   error
	ready chan struct{}
}

func newBuilders(n int, build func(i int) (*store.Write, error)) *builders {
	size := min(window, n)
	b := &builders{slots: make([]slot, size), free: make(chan struct{}, size), stop: make(chan struct{})}
	for i := range b.slots {
		b.slots[i].ready = make(chan struct{})
		b.free <- struct{}{}
	}
	jobs := make(chan int)
	b.wg.Go(func() {
		defer close(jobs)
		for i := range n {
			// The k-th token taken is the (k-window)-th given back by
			// done, once entry i-window is taken and its slot cleared.
			select {
			case <-b.free:
			case <-b.stop:
				return
			}
			select {
			case jobs <- i:
			case <-b.stop:
				return
			}
		}
	})
	for range min(runtime.GOMAXPROCS(0), n) {
		b.wg.Go(func() {
			for i := range jobs {
				s := &b.slots[i%size]
				select {
				case <-b.stop:
					s.err = context.Canceled
				default:
					s.write, s.err = build(i)
				}
				close(s.ready)
			}
		})
	}
	return b
}

// take waits for entry i's write (nil: none) and clears its slot; entries
// are taken in order, each followed by done.
func (b *builders) take(i int) (*store.Write, error) {
	s := &b.slots[i%len(b.slots)]
	<-s.ready
	wr, err := s.write, s.err
	*s = slot{ready: make(chan struct{})}
	return wr, err
}

// done lets the builders start one more entry.
func (b *builders) done() { b.free <- struct{}{} }

// close stops the builders and waits for them: entries not yet started are
// not built.
func (b *builders) close() {
	close(b.stop)
	b.wg.Wait()
}

// resolveReferences adds to to where each conditional reference points:
// the one resource its condition matched.
func resolveReferences(to map[string]string, refs []condRef, matches [][]*store.Version) error {
	for _, r := range refs {
		m := matches[r.cond]
		if len(m) != 1 {
			how := "no resource"
			if len(m) > 1 {
				how = "more than one resource"
			}
			return fhir.PreconditionFailed("The conditional reference '"+r.ref+"' matches "+how+"; it must match exactly one",
				"条件引用 '"+r.ref+"' 匹配的资源数不是一个")
		}
		to[r.ref] = m[0].Type + "/" + m[0].ID
	}
	return nil
}

// targets chooses each entry's target (see target; read: whether the
// current versions are read now) and returns where every fullUrl points
// (Type/id).
func (w *Writer) targets(ctx context.Context, p *fhir.Principal, plans []*plan, matches [][]*store.Version, read bool) (map[string]string, error) {
	to := map[string]string{} // fullUrls and conditional references -> Type/id
	touched := map[string]int{}
	for _, pl := range plans {
		pl.id, pl.cur, pl.result = "", nil, nil
		if err := w.target(ctx, p, pl, matches, read); err != nil {
			return nil, &EntryError{Index: pl.e.Index, Err: err}
		}
		if pl.id == "" {
			continue
		}
		key := pl.e.Type + "/" + pl.id
		if j, dup := touched[key]; dup {
			return nil, &EntryError{Index: pl.e.Index, Err: fhir.Invalid(fhir.IssueInvalid,
				key+" is the target of entry "+strconv.Itoa(j)+" too; a transaction may touch a resource once",
				key+" 也是第 "+strconv.Itoa(j)+" 项的目标；一个事务中同一资源只能操作一次")}
		}
		touched[key] = pl.e.Index
		if pl.e.FullURL != "" {
			to[pl.e.FullURL] = key
			if rel, ok := relativeOf(pl.e.FullURL); ok && rel != key {
				to[rel] = key
			}
		}
	}
	return to, nil
}

// relativeOf gives the Type/id tail of an absolute fullUrl
// (http://example.org/fhir/Patient/123 -> Patient/123), which references
// elsewhere in the Bundle may use relative to the same base.
func relativeOf(fullURL string) (string, bool) {
	if !strings.HasPrefix(fullURL, "http://") && !strings.HasPrefix(fullURL, "https://") {
		return "", false
	}
	parts := strings.Split(strings.TrimSuffix(fullURL, "/"), "/")
	if len(parts) < 2 {
		return "", false
	}
	return parts[len(parts)-2] + "/" + parts[len(parts)-1], true
}

// target decides which resource an entry acts on (pl.id, and unless read
// is false, its current version pl.cur), or sets its result when it acts
// on none.
func (w *Writer) target(ctx context.Context, p *fhir.Principal, pl *plan, matches [][]*store.Version, read bool) error {
	e := pl.e
	var m []*store.Version
	if pl.cond >= 0 {
		m = matches[pl.cond]
		if len(m) > 1 {
			if e.Method == http.MethodPost {
				return fhir.PreconditionFailed("If-None-Exist matches more than one resource", "If-None-Exist 条件匹配到多个资源")
			}
			return fhir.PreconditionFailed("The criteria match more than one resource", "检索条件匹配到多个资源")
		}
	}
	switch {
	case e.Method == http.MethodPost && pl.cond >= 0 && len(m) == 1:
		pl.result = &Result{Status: http.StatusOK, Version: m[0], Message: msgExists}
		// References to this entry's fullUrl point at what was found.
		pl.id = m[0].ID
		return nil
	case e.Method == http.MethodPost:
		// The spec has the server ignore a client id on create.
		pl.id = w.newID()
		return nil
	case pl.cond >= 0 && len(m) == 1:
		if e.Method == http.MethodPut {
			if rid := pl.resourceID(); rid != "" && rid != m[0].ID {
				return fhir.Invalid(fhir.IssueInvalid, "The resource id does not match the resource the criteria found",
					"资源 id 与条件匹配到的资源不一致").WithExpression(e.Type + ".id")
			}
		}
		pl.id, pl.cur = m[0].ID, m[0]
		return nil
	case pl.cond >= 0 && e.Method == http.MethodDelete:
		pl.result = &Result{Status: http.StatusNoContent, Message: msgNoMatch}
		return nil
	case pl.cond >= 0:
		// Conditional update matching nothing creates, with the body's id
		// if it has one.
		if pl.id = pl.resourceID(); pl.id == "" {
			pl.id = w.newID()
		} else if err := CheckID(pl.id); err != nil {
			return err
		}
	default:
		pl.id = e.ID
	}
	if !read {
		return nil
	}
	var err error
	pl.cur, err = w.current(ctx, p, e.Type, pl.id)
	return err
}

// current reads the current version of a resource (nil: none).
func (w *Writer) current(ctx context.Context, p *fhir.Principal, typ, id string) (*store.Version, error) {
	cur, err := w.opts.Store.Read(ctx, access(p), typ, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return cur, err
}

// build makes the write of an entry whose target is known (nil: none).
func (w *Writer) build(ctx context.Context, pl *plan, p *fhir.Principal, to map[string]string, now time.Time) (*store.Write, error) {
	if pl.result != nil {
		return nil, nil // found by ifNoneExist, or nothing to delete
	}
	e, cur := pl.e, pl.cur
	if err := checkIfMatch(e.IfMatch, cur); err != nil && !(e.Method == http.MethodDelete && cur != nil && cur.Deleted) {
		return nil, err
	}
	res := pl.res
	status, msg := http.StatusOK, msgUpdated
	switch e.Method {
	case http.MethodPost:
		status, msg = http.StatusCreated, msgCreated
	case http.MethodPut:
		if cur == nil || cur.Deleted {
			status, msg = http.StatusCreated, msgCreated
		}
	case http.MethodPatch:
		switch {
		case cur == nil:
			return nil, fhir.NotFound(e.Type, pl.id)
		case cur.Deleted:
			return nil, fhir.Gone(e.Type, pl.id)
		}
		patched, err := applyPatch(pl.ops, cur.Resource, w.opts.MaxBody)
		if err != nil {
			return nil, err
		}
		if res, err = w.opts.Codec.Parse(patched); err != nil {
			// The patch produced an invalid resource: the request is
			// well-formed but cannot be processed.
			return nil, fhir.AsError(err).WithStatus(http.StatusUnprocessableEntity)
		}
		if res.Type != e.Type || res.ID() != pl.id {
			return nil, fhir.Unprocessable(fhir.IssueInvalid, "A patch may not change resourceType or id", "补丁不能修改 resourceType 或 id")
		}
		if same, err := w.unchanged(res, cur); err != nil || same {
			if same {
				pl.result = &Result{Status: http.StatusOK, Version: cur, Message: msgUnchanged, Unchanged: true}
			}
			return nil, err
		}
	case http.MethodDelete:
		switch {
		case cur == nil:
			return nil, fhir.NotFound(e.Type, pl.id)
		case cur.Deleted:
			pl.result = &Result{Status: http.StatusNoContent, Version: cur, Message: msgDeleted}
			return nil, nil
		}
		v := store.Version{Tenant: p.Tenant, Type: e.Type, ID: pl.id, VersionID: cur.VersionID + 1, LastUpdated: now, Deleted: true, Method: http.MethodDelete}
		if err := w.guard(p, cur, &v); err != nil {
			return nil, err
		}
		pl.result = &Result{Status: http.StatusNoContent, Version: &v, Message: msgDeleted}
		return &store.Write{PrevVersion: cur.VersionID, Version: v}, nil
	}
	if len(to) > 0 {
		if _, err := res.RewriteReferences(to); err != nil {
			return nil, err
		}
	}
	if e.KeepUnchanged && e.Method == http.MethodPut && cur != nil && !cur.Deleted {
		if same, err := w.unchanged(res, cur); err != nil || same {
			if same {
				pl.result = &Result{Status: http.StatusOK, Version: cur, Message: msgUnchangedPut, Unchanged: true}
			}
			return nil, err
		}
	}
	wr, err := w.newWrite(ctx, p, res, pl.id, cur, now, e.Method)
	if err != nil {
		return nil, err
	}
	pl.result = &Result{Status: status, Version: &wr.Version, Message: msg}
	return wr, nil
}

// newWrite is the write that stores res as the next version of its type and
// id after cur (nil: none yet), id and meta set, validated and indexed, made
// by the interaction method (POST, PUT, PATCH).
func (w *Writer) newWrite(ctx context.Context, p *fhir.Principal, res *fhir.Resource, id string, cur *store.Version, now time.Time, method string) (*store.Write, error) {
	if err := CheckID(id); err != nil {
		return nil, err
	}
	var prev int64
	if cur != nil {
		prev = cur.VersionID
	}
	v := store.Version{Tenant: p.Tenant, Type: res.Type, ID: id, VersionID: prev + 1, LastUpdated: now, Method: method}
	res.SetID(id)
	res.SetMeta(strconv.FormatInt(v.VersionID, 10), v.LastUpdated)
	body, err := w.opts.Codec.Marshal(res)
	if err != nil {
		return nil, err
	}
	v.Resource = body
	if w.opts.Validator != nil {
		issues, err := w.opts.Validator.CheckWrite(ctx, p, res.Type, body)
		if err != nil {
			return nil, err
		}
		for _, is := range issues {
			if is.Severity == "" || is.Severity == "error" || is.Severity == "fatal" {
				return nil, &fhir.Error{Status: http.StatusUnprocessableEntity, Issues: issues}
			}
		}
	}
	if v.Index, err = w.opts.Indexer.Entries(res.Type, body); err != nil {
		return nil, err
	}
	if err := w.guard(p, cur, &v); err != nil {
		return nil, err
	}
	return &store.Write{PrevVersion: prev, Version: v}, nil
}

// guard asks the Guard, if any, about storing next after cur.
func (w *Writer) guard(p *fhir.Principal, cur, next *store.Version) error {
	if w.opts.Guard == nil {
		return nil
	}
	return w.opts.Guard.Writable(p, cur, next)
}

// unchanged reports whether res, once given cur's id and meta, is what the
// store holds as cur: the codec writes one canonical form, so equal bytes
// mean no change.
func (w *Writer) unchanged(res *fhir.Resource, cur *store.Version) (bool, error) {
	res.SetID(cur.ID)
	res.SetMeta(strconv.FormatInt(cur.VersionID, 10), cur.LastUpdated)
	b, err := w.opts.Codec.Marshal(res)
	if err != nil {
		return false, err
	}
	return string(b) == string(cur.Resource), nil
}

// checkIfMatch enforces If-Match (ifMatch) against the current version.
func checkIfMatch(h string, cur *store.Version) error {
	if h == "" {
		return nil
	}
	want, ok := ParseETag(h)
	if !ok {
		return fhir.Invalid(fhir.IssueValue, "If-Match must be an ETag like W/\"3\"", "If-Match 必须是形如 W/\"3\" 的 ETag")
	}
	if cur == nil || cur.Deleted || cur.VersionID != want {
		have := "none"
		if cur != nil {
			have = strconv.FormatInt(cur.VersionID, 10)
		}
		return fhir.PreconditionFailed("If-Match "+h+" does not match the current version ("+have+")",
			"If-Match "+h+" 与当前版本（"+have+"）不一致")
	}
	return nil
}

// ParseETag reads W/"3", "3" or 3.
func ParseETag(v string) (int64, bool) {
	v = strings.TrimSpace(v)
	v = strings.TrimPrefix(v, "W/")
	v = strings.Trim(v, `"`)
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil && n > 0
}
