package mongo

import (
	"github.com/fmtbank/cmts/store"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// accessFilter is the one place the MongoDB store applies a store.Access to
// a query: the filter on documents carrying tenant, reach and to (versions,
// and the pending markers, which carry their version's) that a sees.
// Documents written before reach existed have none, which reads as
// store.ReachTenant: the forms are equality on reach and $ne, which both
// engines evaluate alike on a missing field (never $exists, which FerretDB
// evaluates very slowly beside other conditions). A document addressed to
// one of a's tenants (to: store.Version.Addressee) is seen as its owner's.
// Where a lookup by key has read a version, a.Sees decides instead (the
// same rule).
func accessFilter(a store.Access) bson.D {
	var mine, addressed bson.D
	switch len(a.Tenants) {
	case 0:
	case 1:
		mine = bson.D{{Key: "tenant", Value: a.Tenants[0]}}
		addressed = bson.D{{Key: "to", Value: a.Tenants[0]}}
	default:
		mine = bson.D{{Key: "tenant", Value: bson.D{{Key: "$in", Value: a.Tenants}}}}
		addressed = bson.D{{Key: "to", Value: bson.D{{Key: "$in", Value: a.Tenants}}}}
	}
	other := bson.D{{Key: "reach", Value: int32(store.ReachShared)}}
	if a.Everyone {
		other = bson.D{{Key: "reach", Value: bson.D{{Key: "$ne", Value: int32(store.ReachOwner)}}}}
	}
	switch {
	case len(mine) == 0 && !a.Everyone:
		return matchNone
	case len(mine) == 0:
		return other
	}
	return bson.D{{Key: "$or", Value: bson.A{mine, addressed, other}}}
}

// withAccess is filter limited to what a sees.
func withAccess(a store.Access, filter bson.D) bson.D {
	if len(filter) == 0 {
		return accessFilter(a)
	}
	return bson.D{{Key: "$and", Value: bson.A{accessFilter(a), filter}}}
}

// reachField is the reach field of a version document or marker, none for
// store.ReachTenant (as documents written before reach existed).
func reachField(r store.Reach) bson.D {
	if r == store.ReachTenant {
		return nil
	}
	return bson.D{{Key: "reach", Value: int32(r)}}
}

// toField is the to field of a version document or marker
// (store.Version.Addressee), none when there is no addressee.
func toField(addressee string) bson.D {
	if addressee == "" {
		return nil
	}
	return bson.D{{Key: "to", Value: addressee}}
}
