package store

// TEMPORARY copy of the access branch's API, so that the policy compiles
// before that branch lands; replaced by it at merge.

type Reach uint8

const (
	ReachTenant Reach = iota
	ReachShared
	ReachOwner
)

type Access struct {
	Tenants  []string
	Everyone bool
}

func Tenant(t string) Access { return Access{Tenants: []string{t}} }

func (a Access) Sees(tenant string, r Reach) bool {
	if r == ReachShared && len(a.Tenants) > 0 {
		return true
	}
	for _, t := range a.Tenants {
		if t == tenant {
			return true
		}
	}
	return a.Everyone && r != ReachOwner
}
