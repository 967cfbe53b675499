package store

import (
	"slices"
	"strconv"
)

// Reach says who besides its owning tenant may read a stored version.
// The writer sets it (Version.Reach) from the domain's rules; the store
// only keeps it and applies it on every read through Access. Versions
// written before Reach existed read as ReachTenant.
type Reach uint8

// Reaches.
const (
	// ReachTenant: the owning tenant, and readers of every tenant
	// (Access.Everyone).
	ReachTenant Reach = iota
	// ReachShared: every reader (a microbiota product lot).
	ReachShared
	// ReachOwner: the owning tenant only, even for readers of every tenant
	// (a donor).
	ReachOwner
)

// Access is what one store call may see: every read (Read, ReadVersion,
// Search with everything it looks at, History, the conditions of PutIf and
// Transact) returns only versions that Sees accepts, and answers as if the
// others did not exist. The zero Access sees nothing.
type Access struct {
	// Tenants are the tenants whose resources are visible (usually one:
	// the caller's).
	Tenants []string
	// Everyone makes every other tenant's resources visible too, except
	// ReachOwner ones (the regulator).
	Everyone bool
}

// Tenant is the Access of one tenant: its own resources and shared ones.
func Tenant(t string) Access { return Access{Tenants: []string{t}} }

// Sees reports whether a version owned by tenant with reach r and
// addressed to addressee ("" for none) is visible: the rule every backend
// applies, in Go, for tests and for checks made after reading. A version
// is visible to its addressee's tenant as to its owner's.
func (a Access) Sees(tenant string, r Reach, addressee string) bool {
	switch {
	case slices.Contains(a.Tenants, tenant):
		return true
	case addressee != "" && slices.Contains(a.Tenants, addressee):
		return true
	case r == ReachShared:
		return len(a.Tenants) > 0 || a.Everyone
	case r == ReachOwner:
		return false
	}
	return a.Everyone
}

// Key is a canonical text of a, the same for accesses that see the same
// (tenants in any order, repeated or not); Query.ConditionKey includes it.
func (a Access) Key() string {
	ts := slices.Clone(a.Tenants)
	slices.Sort(ts)
	return "tenants=" + quoteList(slices.Compact(ts)) + ";everyone=" + strconv.FormatBool(a.Everyone)
}
