package search

import (
	"testing"

	"github.com/fmtbank/cmts/store"
)

// TestRegistry checks that every expression of the generated registry
// parsed (New fails otherwise) and that each definition reached the types it
// names.
func TestRegistry(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	reg := e.registry()
	if len(reg.types) != len(r4ResourceTypes) {
		t.Errorf("%d types, want %d", len(reg.types), len(r4ResourceTypes))
	}
	withExpr, pairs, supported := 0, 0, 0
	for i := range r4Params {
		d := &r4Params[i]
		if d.Expression != "" {
			withExpr++
		}
		for _, b := range d.Bases {
			types := []string{b.Type}
			switch b.Type {
			case "Resource", "DomainResource":
				types = nil
				for _, rt := range r4ResourceTypes {
					if b.Type == "Resource" || rt.Base == "DomainResource" {
						types = append(types, rt.Name)
					}
				}
			}
			for _, typ := range types {
				pairs++
				p := reg.types[typ].params[d.Code]
				if p == nil || p.def != d {
					t.Errorf("%s: %s not registered on %s", d.ID, d.Code, typ)
					continue
				}
				if d.Expression != "" && len(p.exprs) != len(b.Expressions) {
					t.Errorf("%s on %s: %d expressions parsed, want %d", d.ID, typ, len(p.exprs), len(b.Expressions))
				}
				if p.supported() {
					supported++
				}
				if p.kind == KindComposite && len(p.components) != len(d.Components) {
					t.Errorf("%s: %d components", d.ID, len(p.components))
				}
			}
		}
	}
	if len(r4Params) != 1387 || withExpr != 1381 {
		t.Errorf("%d parameters, %d with an expression; want 1387 and 1381", len(r4Params), withExpr)
	}
	t.Logf("%d parameters (%d with an expression) on %d types: %d (type, parameter) pairs, %d supported",
		len(r4Params), withExpr, len(reg.types), pairs, supported)
	for _, code := range []string{"_id", "_lastUpdated", "_tag", "_profile", "_security", "_source"} {
		if p := reg.system.params[code]; p == nil || !p.supported() {
			t.Errorf("system search lacks %s", code)
		}
	}
	if p := reg.types["Observation"].params["patient"]; len(p.targets) != 1 || p.targets[0] != "Patient" {
		t.Errorf("Observation patient targets %v, want [Patient]", p.targets)
	}
	if p := reg.types["Patient"].params["name"]; p.kind != store.KindString {
		t.Errorf("Patient name is %s", p.kind)
	}
}
