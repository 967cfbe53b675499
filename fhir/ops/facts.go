package ops

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/store"
)

// The reports keep what they derive from each resource: a view per type of
// every tenant's current resources, each decoded once per version and kept
// up to date from the store's history, so that a report costs a read of
// what changed since the last one and a walk in memory, not a read and
// decode of every resource (issue 12: a report should never need a batch
// job). What is kept depends on the version alone, never on who asks:
// access is decided on each resource, every time, by the policy.

// viewOverlap is how far back a view rereads the history each time: a
// write stamped before the last look may commit after it (the stamp is
// taken before the commit), so the history is read again from well before.
const viewOverlap = 5 * time.Minute

// everyone is the access a view reads with: every tenant, but what only its
// owner reads (donors, the audit trail), which no report counts.
var everyone = store.Access{Everyone: true}

// view is one type's current resources as decoded.
type view struct {
	typ    string
	decode func([]byte) (any, error)
	viewOptions

	mu     sync.RWMutex
	loaded bool
	// synced is when the history was last read (the server's clock).
	synced time.Time
	rows   map[string]*viewRow
	// ids are the keys of rows in id order, for a walk that reads the same
	// every time; sorted says whether new ones were appended since.
	ids    []string
	sorted bool
	// tenants are the owners of the rows: a resource keeps its tenant.
	tenants []string
	// referrers are, by a reference a row makes (as linker names it), the
	// ids of the rows that make it, current ones only.
	referrers map[string][]string
}

// viewOptions are what a view keeps besides what decode gives.
type viewOptions struct {
	// bodies: rows keep the stored JSON too (the types a look-back
	// answers, so that it reads nothing but what changed).
	bodies bool
	// owners: the history is read with the tenants of the rows as well as
	// everyone, so that a resource that comes to be read by its owner only
	// (a Patient given a donor code) is seen to leave every other tenant's
	// sight rather than kept as it was. (A type no validated resource of
	// which is owner-only goes without: naming the tenants makes SQLite
	// read the history twice.)
	owners bool
}

type viewRow struct {
	// head is the version without its index, and without its body unless
	// the view keeps bodies. A row is replaced, never changed, so a
	// pointer to a head stays valid after the lock is released.
	head *store.Version
	x    any
}

// linker is a decoded resource that names the references it makes (the
// look-back's linkKey: search parameter and "Type/id"), which a view
// indexes so that what references a resource is found without a scan.
type linker interface {
	links() []string
}

// views are the report views, one per type, and the look-back's, one per
// type it walks, made on first use.
type views struct {
	mu sync.Mutex
	m  map[string]*view
}

// get is the report view of typ, which keeps what decode gives.
func (vs *views) get(typ string, decode func([]byte) (any, error)) *view {
	return vs.make(typ, typ, decode, viewOptions{})
}

// make is the view named name, made with these when it is new.
func (vs *views) make(name, typ string, decode func([]byte) (any, error), opts viewOptions) *view {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if vs.m == nil {
		vs.m = map[string]*view{}
	}
	v := vs.m[name]
	if v == nil {
		v = &view{typ: typ, decode: decode, viewOptions: opts, rows: map[string]*viewRow{}, referrers: map[string][]string{}}
		vs.m[name] = v
	}
	return v
}

// sync brings the view up to date: the whole type the first time, then
// the versions written since it last looked, by now: the clock the
// server's writes are stamped with.
func (v *view) sync(ctx context.Context, st store.Store, now func() time.Time) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	start := now()
	if !v.loaded {
		q := store.Query{Access: everyone, Type: v.typ, Count: reportPageCount}
		for {
			page, err := st.Search(ctx, q)
			if err != nil {
				return err
			}
			for _, ver := range page.Versions {
				if err := v.apply(ver); err != nil {
					return err
				}
			}
			if !page.More || len(page.Versions) == 0 {
				break
			}
			last := page.Versions[len(page.Versions)-1]
			q.After = &store.SearchCursor{Type: last.Type, ID: last.ID}
		}
		v.loaded, v.synced = true, start
		return nil
	}
	q := store.HistoryQuery{Access: everyone, Type: v.typ, Since: v.synced.Add(-viewOverlap), Count: reportPageCount}
	if v.owners {
		q.Access = store.Access{Tenants: slices.Clone(v.tenants), Everyone: true}
	}
	for {
		page, err := st.History(ctx, q)
		if err != nil {
			return err
		}
		for _, ver := range page.Versions {
			if err := v.apply(ver); err != nil {
				return err
			}
		}
		if page.Next == nil {
			break
		}
		q.After = page.Next
	}
	v.synced = start
	return nil
}

// apply takes ver if it is newer than what the view has.
func (v *view) apply(ver *store.Version) error {
	r := v.rows[ver.ID]
	if r != nil && r.head.VersionID >= ver.VersionID {
		return nil
	}
	var x any
	if !ver.Deleted {
		var err error
		if x, err = v.decode(ver.Resource); err != nil {
			return err
		}
	}
	head := *ver
	head.Index = nil
	if !v.bodies {
		head.Resource = nil
	}
	if r == nil {
		v.ids = append(v.ids, ver.ID)
		v.sorted = false
		if !slices.Contains(v.tenants, ver.Tenant) {
			v.tenants = append(v.tenants, ver.Tenant)
		}
	} else {
		v.unlink(ver.ID, r.x)
	}
	v.rows[ver.ID] = &viewRow{head: &head, x: x}
	if l, ok := x.(linker); ok {
		for _, to := range l.links() {
			if ids := v.referrers[to]; !slices.Contains(ids, ver.ID) {
				v.referrers[to] = append(ids, ver.ID)
			}
		}
	}
	return nil
}

// unlink drops id from the referrers of what x references.
func (v *view) unlink(id string, x any) {
	l, ok := x.(linker)
	if !ok {
		return
	}
	for _, to := range l.links() {
		ids := slices.DeleteFunc(v.referrers[to], func(s string) bool { return s == id })
		if len(ids) == 0 {
			delete(v.referrers, to)
		} else {
			v.referrers[to] = ids
		}
	}
}

// scanDecoded calls each for every current resource of typ that p may see
// under a, with decode's result for its body: from the type's view, or,
// for a caller whose access narrows typ (a patient-context token, whose
// decision needs each body), from a read of every resource.
func scanDecoded[T any](ctx context.Context, o *Ops, p *fhir.Principal, a store.Access, typ string,
	decode func([]byte) (T, error), each func(*store.Version, T) error) error {
	narrow, err := o.policy.Narrow(p, typ)
	if err != nil {
		return err
	}
	if narrow != nil {
		return o.scanFilter(ctx, p, a, typ, nil, func(v *store.Version) error {
			x, err := decode(v.Resource)
			if err != nil {
				return err
			}
			return each(v, x)
		})
	}
	v := o.views.get(typ, func(b []byte) (any, error) { return decode(b) })
	if err := v.sync(ctx, o.store, o.now); err != nil {
		return err
	}
	v.mu.Lock()
	if !v.sorted {
		slices.Sort(v.ids)
		v.sorted = true
	}
	v.mu.Unlock()
	v.mu.RLock()
	defer v.mu.RUnlock()
	for _, id := range v.ids {
		r := v.rows[id]
		if r.head.Deleted || !a.Sees(r.head.Tenant, r.head.Reach, r.head.Addressee) || !o.policy.Readable(p, r.head) {
			continue
		}
		if err := each(r.head, r.x.(T)); err != nil {
			return err
		}
	}
	return nil
}

// referring are the current rows a sees that make one of the references
// keys (linker), each once, in id order.
func (v *view) referring(a store.Access, keys []string) []*viewRow {
	v.mu.RLock()
	defer v.mu.RUnlock()
	seen := map[string]bool{}
	var out []*viewRow
	for _, k := range keys {
		for _, id := range v.referrers[k] {
			if seen[id] {
				continue
			}
			seen[id] = true
			if r := v.rows[id]; r != nil && r.visible(a) {
				out = append(out, r)
			}
		}
	}
	slices.SortFunc(out, func(x, y *viewRow) int { return strings.Compare(x.head.ID, y.head.ID) })
	return out
}

// byID are the current rows a sees among ids, each once, in id order, and
// the ids the view has no row for (it has every resource a reader of every
// tenant sees, current or deleted).
func (v *view) byID(a store.Access, ids []string) (found []*viewRow, missing []string) {
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	v.mu.RLock()
	defer v.mu.RUnlock()
	for _, id := range ids {
		switch r := v.rows[id]; {
		case r == nil:
			missing = append(missing, id)
		case r.visible(a):
			found = append(found, r)
		}
	}
	return found, missing
}

// visible reports whether the row is a current resource a sees.
func (r *viewRow) visible(a store.Access) bool {
	return !r.head.Deleted && a.Sees(r.head.Tenant, r.head.Reach, r.head.Addressee)
}

// heads are the rows' versions.
func heads(rows []*viewRow) []*store.Version {
	out := make([]*store.Version, len(rows))
	for i, r := range rows {
		out[i] = r.head
	}
	return out
}
