package store_test

import (
	"testing"

	"github.com/fmtbank/cmts/store"
)

func TestConditionKey(t *testing.T) {
	t.Parallel()
	tok := func(code string) store.Token {
		return store.Token{Param: "identifier", System: ptr("http://cu"), Code: code}
	}
	active := store.Token{Param: "active", Code: "true"}
	q := func(f store.Expr) store.Query {
		return store.Query{Access: store.Tenant("t1"), Type: "Patient", Filter: f}
	}
	for _, tc := range []struct {
		name string
		a, b store.Query
		same bool
	}{
		{"identical", q(tok("A")), q(tok("A")), true},
		{"and order", q(store.And{tok("A"), active}), q(store.And{active, tok("A")}), true},
		{"or order", q(store.Or{tok("A"), tok("B")}), q(store.Or{tok("B"), tok("A")}), true},
		{"nested and flattened", q(store.And{tok("A"), store.And{active, tok("B")}}), q(store.And{tok("B"), tok("A"), active}), true},
		{"repeated operand", q(store.And{tok("A"), tok("A")}), q(tok("A")), true},
		{"single operand", q(store.Or{tok("A")}), q(tok("A")), true},
		{"id order", q(store.ID{IDs: []string{"b", "a", "b"}}), q(store.ID{IDs: []string{"a", "b"}}), true},
		{"types order", store.Query{Access: store.Tenant("t1"), Types: []string{"Patient", "Group"}, Filter: active},
			store.Query{Access: store.Tenant("t1"), Types: []string{"Group", "Patient"}, Filter: active}, true},
		{"range bounds order",
			q(store.Range{Param: "birthdate", Bounds: []store.Bound{{Op: store.GE, Value: "1"}, {High: true, Op: store.LT, Value: "2"}}}),
			q(store.Range{Param: "birthdate", Bounds: []store.Bound{{High: true, Op: store.LT, Value: "2"}, {Op: store.GE, Value: "1"}}}), true},
		{"paging ignored", store.Query{Access: store.Tenant("t1"), Type: "Patient", Filter: active, Count: 2},
			store.Query{Access: store.Tenant("t1"), Type: "Patient", Filter: active, Count: 50, Offset: 3, Sort: []store.SortKey{{Param: "name"}}}, true},
		{"nil filter and empty and", q(nil), q(store.And{}), true},
		{"chain filter order",
			q(store.Chain{Param: "general-practitioner", Filter: store.And{tok("A"), active}}),
			q(store.Chain{Param: "general-practitioner", Filter: store.And{active, tok("A")}}), true},

		{"other tenant", q(tok("A")), store.Query{Access: store.Tenant("t2"), Type: "Patient", Filter: tok("A")}, false},
		{"tenants order", store.Query{Access: store.Access{Tenants: []string{"t1", "t2"}}, Type: "Patient", Filter: active},
			store.Query{Access: store.Access{Tenants: []string{"t2", "t1", "t2"}}, Type: "Patient", Filter: active}, true},
		{"more tenants", q(tok("A")), store.Query{Access: store.Access{Tenants: []string{"t1", "t2"}}, Type: "Patient", Filter: tok("A")}, false},
		{"everyone", q(tok("A")), store.Query{Access: store.Access{Tenants: []string{"t1"}, Everyone: true}, Type: "Patient", Filter: tok("A")}, false},
		{"no access", q(tok("A")), store.Query{Type: "Patient", Filter: tok("A")}, false},
		{"other type", q(tok("A")), store.Query{Access: store.Tenant("t1"), Type: "Group", Filter: tok("A")}, false},
		{"other value", q(tok("A")), q(tok("B")), false},
		{"system nil vs empty", q(store.Token{Param: "identifier", Code: "A"}), q(store.Token{Param: "identifier", System: ptr(""), Code: "A"}), false},
		{"and vs or", q(store.And{tok("A"), tok("B")}), q(store.Or{tok("A"), tok("B")}), false},
		{"empty and vs empty or", q(store.And{}), q(store.Or{}), false},
		{"not", q(tok("A")), q(store.Not{Expr: tok("A")}), false},
		{"composite order matters",
			q(store.Composite{Param: "c", Components: []store.Expr{tok("A"), tok("B")}}),
			q(store.Composite{Param: "c", Components: []store.Expr{tok("B"), tok("A")}}), false},
		// Quoting keeps values from running into each other.
		{"quoting", q(store.Token{Param: "identifier", System: ptr(`a","b`), Code: "c"}),
			q(store.Token{Param: "identifier", System: ptr("a"), Code: `b","c`}), false},
		{"string mode", q(store.String{Param: "name", Text: "x"}), q(store.String{Param: "name", Mode: store.Exact, Text: "x"}), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ka, kb := tc.a.ConditionKey(), tc.b.ConditionKey()
			if (ka == kb) != tc.same {
				t.Errorf("same = %v, want %v:\n  %s\n  %s", ka == kb, tc.same, ka, kb)
			}
		})
	}
}
