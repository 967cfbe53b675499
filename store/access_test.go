package store_test

import (
	"testing"

	"github.com/fmtbank/cmts/store"
)

func TestAccessSees(t *testing.T) {
	t.Parallel()
	type seen struct {
		tenant    string
		reach     store.Reach
		addressee string
	}
	for _, tc := range []struct {
		name string
		a    store.Access
		want map[seen]bool
	}{
		{"nobody", store.Access{}, map[seen]bool{
			{"h1", store.ReachTenant, ""}: false, {"h1", store.ReachShared, ""}: false, {"h1", store.ReachOwner, ""}: false,
			{"h1", store.ReachTenant, "c1"}: false,
		}},
		{"one tenant", store.Tenant("h1"), map[seen]bool{
			{"h1", store.ReachTenant, ""}: true, {"h1", store.ReachShared, ""}: true, {"h1", store.ReachOwner, ""}: true,
			{"b1", store.ReachTenant, ""}: false, {"b1", store.ReachShared, ""}: true, {"b1", store.ReachOwner, ""}: false,
			{"h2", store.ReachTenant, "h1"}: true, {"h2", store.ReachOwner, "h1"}: true, {"h2", store.ReachTenant, "c1"}: false,
		}},
		{"two tenants", store.Access{Tenants: []string{"h1", "h2"}}, map[seen]bool{
			{"h2", store.ReachTenant, ""}: true, {"h2", store.ReachOwner, ""}: true,
			{"b1", store.ReachTenant, ""}: false, {"b1", store.ReachShared, ""}: true, {"b1", store.ReachOwner, ""}: false,
		}},
		{"everyone", store.Access{Tenants: []string{"nhc"}, Everyone: true}, map[seen]bool{
			{"nhc", store.ReachOwner, ""}: true,
			{"b1", store.ReachTenant, ""}: true, {"b1", store.ReachShared, ""}: true, {"b1", store.ReachOwner, ""}: false,
			{"b1", store.ReachOwner, "nhc"}: true, {"b1", store.ReachOwner, "c1"}: false,
		}},
		{"everyone without a tenant", store.Access{Everyone: true}, map[seen]bool{
			{"b1", store.ReachTenant, ""}: true, {"b1", store.ReachShared, ""}: true, {"b1", store.ReachOwner, ""}: false,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for v, want := range tc.want {
				if got := tc.a.Sees(v.tenant, v.reach, v.addressee); got != want {
					t.Errorf("Sees(%q, %d, %q) = %v, want %v", v.tenant, v.reach, v.addressee, got, want)
				}
			}
		})
	}
}

func TestAccessKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		a, b store.Access
		same bool
	}{
		{"one tenant", store.Tenant("h1"), store.Access{Tenants: []string{"h1"}}, true},
		{"order and repetition", store.Access{Tenants: []string{"h1", "h2"}}, store.Access{Tenants: []string{"h2", "h1", "h1"}}, true},
		{"other tenant", store.Tenant("h1"), store.Tenant("h2"), false},
		{"everyone", store.Tenant("h1"), store.Access{Tenants: []string{"h1"}, Everyone: true}, false},
		{"quoting", store.Access{Tenants: []string{`a","b`}}, store.Access{Tenants: []string{"a", "b"}}, false},
		{"nobody", store.Access{}, store.Tenant(""), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if ka, kb := tc.a.Key(), tc.b.Key(); (ka == kb) != tc.same {
				t.Errorf("same = %v, want %v:\n  %s\n  %s", ka == kb, tc.same, ka, kb)
			}
		})
	}
}
