package ops

import (
	"context"
	"slices"
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

	mu     sync.RWMutex
	loaded bool
	// synced is when the history was last read (the server's clock).
	synced time.Time
	rows   map[string]*viewRow
	// ids are the keys of rows in id order, for a walk that reads the same
	// every time; sorted says whether new ones were appended since.
	ids    []string
	sorted bool
}

type viewRow struct {
	head store.Version // without body and index
	x    any
}

// views are the report views, one per type, made on first use.
type views struct {
	mu sync.Mutex
	m  map[string]*view
}

func (vs *views) get(typ string, decode func([]byte) (any, error)) *view {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if vs.m == nil {
		vs.m = map[string]*view{}
	}
	v := vs.m[typ]
	if v == nil {
		v = &view{typ: typ, decode: decode, rows: map[string]*viewRow{}}
		vs.m[typ] = v
	}
	return v
}

// sync brings the view up to date: the whole type the first time, then
// the versions written since it last looked.
func (v *view) sync(ctx context.Context, st store.Store) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	start := time.Now()
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
	head.Resource, head.Index = nil, nil
	if r == nil {
		v.ids = append(v.ids, ver.ID)
		v.sorted = false
		r = &viewRow{}
		v.rows[ver.ID] = r
	}
	r.head, r.x = head, x
	return nil
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
	if err := v.sync(ctx, o.store); err != nil {
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
		if r.head.Deleted || !a.Sees(r.head.Tenant, r.head.Reach, r.head.Addressee) || !o.policy.Readable(p, &r.head) {
			continue
		}
		if err := each(&r.head, r.x.(T)); err != nil {
			return err
		}
	}
	return nil
}
