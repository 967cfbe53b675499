package sqlite

import (
	"slices"
	"strconv"
	"strings"

	"github.com/fmtbank/cmts/store"
)

// accessArms is the one place the embedded store applies a store.Access:
// conditions on the row of alias t (of current or versions, which all carry
// tenant, reach and addressee) whose OR says "a sees the row". They are
// disjoint, and each keeps an index usable on its own: one per tenant of a
// (the (tenant, ...)-led indexes, which a UNION ALL of the arms merges in
// order), then, when a names tenants, one for other tenants' rows
// addressed to them (the partial indexes on addressee <> ”), then one for
// other tenants' rows by reach (for a shared reach, the partial indexes on
// reach = 1, which hold the shared rows alone). plus marks the columns
// with a unary + so that they do not choose the index (see compiler).
// None: a sees nothing.
func accessArms(a store.Access, t string, plus bool) []frag {
	p := ""
	if plus {
		p = "+"
	}
	if len(a.Tenants) == 0 && !a.Everyone {
		return nil
	}
	tenants := slices.Compact(slices.Sorted(slices.Values(a.Tenants)))
	var arms []frag
	for _, tn := range tenants {
		arms = append(arms, sqlf(p+t+".tenant = ?", tn))
	}
	other := sqlf(p + t + ".reach = " + reachSQL(store.ReachShared))
	if a.Everyone {
		other = sqlf(p + t + ".reach <> " + reachSQL(store.ReachOwner))
	}
	if len(tenants) > 0 {
		// The literal addressee <> '' lets SQLite use the partial indexes.
		arms = append(arms, sqlf(p+t+".addressee <> '' AND %s AND NOT %s",
			inList(p+t+".addressee", tenants), inList(p+t+".tenant", tenants)))
		other = sqlf("%s AND NOT %s AND NOT %s", other, inList(p+t+".tenant", tenants), inList(p+t+".addressee", tenants))
	}
	return append(arms, other)
}

// access is accessArms as one condition. Without shared (no row of another
// tenant with store.ReachShared or an addressee can be among the
// candidates: see sharedTypes), an access of tenants names the tenants
// alone, which is how a search of one tenant keeps walking the (tenant,
// type, id) index in page order.
func access(a store.Access, t string, plus, shared bool) frag {
	arms := accessArms(a, t, plus)
	if !shared && !a.Everyone && len(a.Tenants) > 0 {
		arms = arms[:len(slices.Compact(slices.Sorted(slices.Values(a.Tenants))))]
	}
	switch len(arms) {
	case 0:
		return sqlf("0")
	case 1:
		return arms[0]
	}
	f := joinFrags(arms, " OR ")
	f.sql = "(" + f.sql + ")"
	return f
}

// sharedTypes is the query telling whether any current resource of the
// types (any type when none) is shared (store.ReachShared) or addressed to
// a tenant, from the partial indexes current_shared and current_addressed.
func sharedTypes(types []string) frag {
	if len(types) == 0 {
		return sqlf("SELECT EXISTS (SELECT 1 FROM current WHERE reach = " + reachSQL(store.ReachShared) + ") OR EXISTS (SELECT 1 FROM current WHERE addressee <> '')")
	}
	in := inList("type", types)
	return sqlf("SELECT EXISTS (SELECT 1 FROM current WHERE reach = "+reachSQL(store.ReachShared)+" AND %s) OR EXISTS (SELECT 1 FROM current WHERE addressee <> '' AND %s)", in, in)
}

// reachSQL is r as an SQL literal (a constant, so that the partial indexes
// on reach apply).
func reachSQL(r store.Reach) string {
	return strconv.Itoa(int(r))
}

// inList is "col = ?" for one value, "col IN (?, ...)" for several.
func inList(col string, vals []string) frag {
	if len(vals) == 1 {
		return sqlf(col+" = ?", vals[0])
	}
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = v
	}
	return frag{col + " IN (" + strings.TrimSuffix(strings.Repeat("?, ", len(vals)), ", ") + ")", args}
}
