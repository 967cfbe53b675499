// Package store defines how the server keeps FHIR resources: every version of
// every resource, each with the tenant that wrote it, its Reach (who else may
// read it) and the search index entries computed from it at write time.
// Backends (store/sqlite, store/mongo) implement Store and prove it with
// store/storetest.
//
// Every read takes an Access (which tenants, and whether every other
// tenant's too) and each backend applies it in one place; a version the
// Access does not see is answered as absent.
package store

import (
	"context"
	"errors"
	"iter"
	"time"
)

// Errors returned by every backend. Backends translate their driver errors into
// these (wrapped with detail); nothing above the backend sees driver errors.
var (
	// ErrNotFound: no such resource (or version) visible to the Access.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: the write's expected version no longer matches the stored
	// one (a lost race), or the id is taken.
	ErrConflict = errors.New("store: version conflict")
	// ErrUnavailable: the database cannot be reached right now; the request may
	// be retried later.
	ErrUnavailable = errors.New("store: unavailable")
	// ErrInvalidQuery: the query uses a form this backend cannot evaluate.
	ErrInvalidQuery = errors.New("store: invalid query")
)

// Version is one stored version of a resource. A deleted resource is a version
// too (a tombstone) with Deleted set and no Resource body.
type Version struct {
	// Tenant is the owner: the tenant that wrote the version.
	Tenant string
	Type   string
	ID     string
	// VersionID counts from 1 and grows by one with every write, deletes included.
	VersionID int64
	// LastUpdated is UTC, with microsecond precision at most.
	LastUpdated time.Time
	Deleted     bool
	// Resource is the FHIR JSON of this version, meta.versionId and
	// meta.lastUpdated already set; nil for a tombstone.
	Resource []byte
	// Index holds the search index entries of this version (none for a tombstone).
	Index []IndexEntry
	// Method is the interaction that made this version: POST, PUT, PATCH or
	// DELETE; empty for versions written before it was recorded.
	Method string
	// Reach is who besides Tenant may read this version (see Access);
	// ReachTenant for versions written before it was recorded.
	Reach Reach
	// Addressee is one more tenant that reads this version as its owner
	// does, whatever its Reach (the expert centre a consultation Task is
	// addressed to); "" for none. It gives no right to write: the writer
	// decides that, and an update keeps Tenant.
	Addressee string
}

// Write is one new version to store. It succeeds only if the resource's current
// version is still PrevVersion (0: the resource must not exist yet), which makes
// every write a compare-and-swap.
type Write struct {
	PrevVersion int64
	Version     Version
}

// Writes yields ws in order, or err alone when it is not nil: writes made
// all at once, as a store that takes them one by one (TransactSeq) pulls
// them.
func Writes(ws []Write, err error) iter.Seq2[Write, error] {
	return func(yield func(Write, error) bool) {
		if err != nil {
			yield(Write{}, err)
			return
		}
		for _, w := range ws {
			if !yield(w, nil) {
				return
			}
		}
	}
}

// HistoryQuery selects versions for _history at instance (Type and ID set),
// type (Type set) or system level (neither).
type HistoryQuery struct {
	// Access limits the versions to those it sees (each by its own Reach).
	Access Access
	Type   string
	ID     string
	// Since, when not zero, keeps versions with LastUpdated >= Since.
	Since time.Time
	// Count is the page size (>0).
	Count int
	// After, when set, continues after this position in the history order.
	After *HistoryCursor
}

// HistoryCursor is a position in the history order: LastUpdated descending,
// then Type, ID ascending, then VersionID descending. Because new versions only
// enter at the top of that order, pages already handed out stay stable.
type HistoryCursor struct {
	LastUpdated time.Time
	Type        string
	ID          string
	VersionID   int64
}

// Page is a page of versions with the position to continue from (nil when the
// page is the last).
type HistoryPage struct {
	Versions []*Version
	Next     *HistoryCursor
}

// Store keeps resource versions. All methods take a context and are safe for
// concurrent use. Times are UTC.
//
// Resource ids are unique per type across tenants: a resource is invisible to
// an Access that does not see it (ErrNotFound), and its id cannot be taken by
// another tenant (ErrConflict), even one that sees it (a shared resource is
// written by its owner only).
type Store interface {
	// Read returns the current version of a resource, a tombstone included.
	// Errors: ErrNotFound when the resource never existed, or its current
	// version is not visible to a.
	Read(ctx context.Context, a Access, typ, id string) (*Version, error)

	// ReadVersion returns one version. Errors: ErrNotFound, also when a
	// does not see that version.
	ReadVersion(ctx context.Context, a Access, typ, id string, versionID int64) (*Version, error)

	// Put stores w.Version as the new current version if the stored current
	// version is w.PrevVersion (0: none may exist), atomically with its index
	// entries: a reader sees the whole version or nothing of it. The new
	// VersionID must be PrevVersion+1, and an update's Tenant that of the
	// current version. Errors: ErrConflict when the precondition fails
	// (another tenant's resource included), ErrUnavailable.
	Put(ctx context.Context, w Write) error

	// PutIf makes a write that depends on a search atomic: it evaluates q
	// as Search does, calls decide once with the matches (at most q.Count;
	// the caller's FHIR rules choose from none, one or several), and when
	// decide returns a Write stores it as Put does. No other PutIf whose
	// condition has the same q.ConditionKey() evaluates it between this
	// call's search and the end of its write, so racing conditional writes
	// of one condition act one after the other: two conditional creates
	// make one resource. Writes by Put, and PutIf on other conditions, are
	// not held back (a backend may hold them too; the embedded store
	// does). decide may read from the store but must not write to it.
	// Errors: decide's error unchanged; those of Search and Put;
	// ErrUnavailable when the condition cannot be held long enough (see
	// the backend), in which case nothing was written.
	PutIf(ctx context.Context, q Query, decide func(matches []*Version) (*Write, error)) error

	// Transact stores several writes as one: all or none, each a compare-and-swap
	// as in Put. decide computes the writes from the matches of conds: matches[i]
	// holds the matches of conds[i] (at most conds[i].Count), and every cond is held
	// against any PutIf or Transact with the same ConditionKey from its search until
	// the writes are committed (as PutIf does). decide is called once; it may read
	// from the store but must not write; it returns the writes (none: nothing is
	// stored). At most one write per resource (type, id): more is ErrConflict.
	// A reader (Read, Search, History, ...) never sees some of the writes without
	// the others. Errors: decide's error unchanged; ErrConflict when any write's
	// precondition fails (nothing is stored); ErrUnavailable.
	Transact(ctx context.Context, conds []Query, decide func(matches [][]*Version) ([]Write, error)) error

	// History returns versions newest first (see HistoryCursor).
	History(ctx context.Context, q HistoryQuery) (*HistoryPage, error)

	// Search returns current, non-deleted versions that match q.
	Search(ctx context.Context, q Query) (*SearchPage, error)

	// Scan returns up to limit current, non-deleted versions of every
	// tenant in (type, id) order, after the cursor (nil: from the start). It
	// serves maintenance (reindex), never a request.
	Scan(ctx context.Context, after *SearchCursor, limit int) ([]*Version, error)

	// Count returns the number of current, non-deleted versions of every
	// tenant (for maintenance progress; may be approximate while writes run).
	Count(ctx context.Context) (int, error)

	// SetIndex replaces the index entries of a current version in place,
	// without making a new version. Errors: ErrConflict when v is no longer
	// the current version (a writer got there first, with entries of its own).
	SetIndex(ctx context.Context, v *Version, entries []IndexEntry) error

	// Ping reports whether the database is reachable (ErrUnavailable if not).
	Ping(ctx context.Context) error

	// Close releases the database; in-flight calls may fail afterwards.
	Close() error
}
