package ops

import (
	"context"
	"encoding/json"
	"errors"
	"golang.org/x/sync/errgroup"
	"slices"
	"strings"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/store"
)

// Names of the guide (wmt-ig.md) the trace follows.
const (
	sidBase         = "http://fmtbank.org/fhir/sid/"
	donorCodeSystem = sidBase + "donor-code"
	lotSystem       = sidBase + "product-lot"
	// TenantSource prefixes meta.source on every resource a trace
	// answers: the owning tenant's id follows the "#".
	TenantSource      = sidBase + "tenant#"
	profileBase       = "http://fmtbank.org/fhir/StructureDefinition/"
	productLotURL     = profileBase + "product-lot"
	paramProductLot   = "product-lot"
	paramSubstance    = "substance"
	maxOr             = 200
	internalPageCount = 1000
)

// Trace is what a look-back or a look-forward reached: the starting
// resource and every version found, each once, read across tenants (the
// caller's view is applied when it is shown).
type Trace struct {
	Start *store.Version
	Found []*store.Version
	seen  map[string]bool
	// Lots are the product lots among Found.
	Lots []*store.Version
}

func key(typ, id string) string { return typ + "/" + id }

func (t *Trace) add(vs ...*store.Version) []*store.Version {
	var fresh []*store.Version
	for _, v := range vs {
		k := key(v.Type, v.ID)
		if t.seen[k] {
			continue
		}
		t.seen[k] = true
		t.Found = append(t.Found, v)
		fresh = append(fresh, v)
	}
	return fresh
}

// wide is the access of the trace's own reads: the caller's tenant (its
// donors included) and every other tenant but what only its owner reads.
func wide(p *fhir.Principal) store.Access {
	return store.Access{Tenants: []string{p.Tenant}, Everyone: true}
}

// Trace follows the material of a lot, a donation or a donor forward to
// every procedure that used it, its recipient and the adverse events that
// suspect the procedure; from a recipient it goes back to every lot,
// donation and donor. The start must be one p reads (404 otherwise).
func (o *Ops) Trace(ctx context.Context, p *fhir.Principal, typ, id string) (*Trace, error) {
	a := wide(p)
	start, err := o.store.Read(ctx, a, typ, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, fhir.NotFound(typ, id)
	case err != nil:
		return nil, err
	case start.Deleted:
		return nil, fhir.NotFound(typ, id)
	}
	if !o.policy.Readable(p, start) {
		return nil, fhir.NotFound(typ, id)
	}
	t := &Trace{Start: start, seen: map[string]bool{}}
	t.add(start)
	switch {
	case typ == "Specimen":
		err = o.forward(ctx, a, t, []*store.Version{start})
	case isDonor(start):
		var specimens []*store.Version
		specimens, err = o.search(ctx, a, "Specimen", refsTo("subject", "Patient", []string{id}))
		if err == nil {
			err = o.forward(ctx, a, t, t.add(specimens...))
		}
	default:
		err = o.backward(ctx, a, t, start)
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

// forward adds the specimens derived from from (any depth), the procedures
// that used any of them, their recipients and their adverse events.
func (o *Ops) forward(ctx context.Context, a store.Access, t *Trace, from []*store.Version) error {
	specimens := slices.Clone(from)
	frontier := from
	for len(frontier) > 0 {
		children, err := o.search(ctx, a, "Specimen", refsTo("parent", "Specimen", ids(frontier)))
		if err != nil {
			return err
		}
		frontier = t.add(children...)
		specimens = append(specimens, frontier...)
	}
	for _, s := range specimens {
		if isLot(s) {
			t.Lots = append(t.Lots, s)
		}
	}
	// Each is one query per chunk of specimens: the recipients and the
	// events are found through the procedures in the store (_has, chain),
	// not by listing the procedures' ids.
	used := refsTo(paramProductLot, "Specimen", ids(specimens))
	var treated, suspected []store.Expr
	for _, u := range used {
		treated = append(treated, store.Has{Type: "Procedure", Param: "subject", Filter: u})
		suspected = append(suspected, store.Chain{Param: paramSubstance, TargetType: "Procedure", Filter: u})
	}
	// The three are independent reads: run side by side, added in a fixed
	// order so the trace reads the same every time.
	var procs, patients, events []*store.Version
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { procs, err = o.search(gctx, a, "Procedure", used); return err })
	g.Go(func() (err error) { patients, err = o.search(gctx, a, "Patient", treated); return err })
	g.Go(func() (err error) { events, err = o.search(gctx, a, "AdverseEvent", suspected); return err })
	if err := g.Wait(); err != nil {
		return err
	}
	t.add(procs...)
	t.add(patients...)
	t.add(events...)
	return nil
}

// backward adds the recipient's procedures, the lots they used, the
// specimens those came from (any depth) and their donors.
func (o *Ops) backward(ctx context.Context, a store.Access, t *Trace, recipient *store.Version) error {
	procs, err := o.search(ctx, a, "Procedure", refsTo("subject", "Patient", []string{recipient.ID}))
	if err != nil {
		return err
	}
	procs = t.add(procs...)
	var lotIDs []string
	for _, pr := range procs {
		lotIDs = append(lotIDs, productLots(pr.Resource)...)
	}
	var donors []string
	frontier := lotIDs
	for len(frontier) > 0 {
		found, err := o.search(ctx, a, "Specimen", idsExpr(frontier))
		if err != nil {
			return err
		}
		frontier = nil
		for _, s := range t.add(found...) {
			if isLot(s) {
				t.Lots = append(t.Lots, s)
			}
			parents, subject := specimenLinks(s.Resource)
			frontier = append(frontier, parents...)
			if subject != "" {
				donors = append(donors, subject)
			}
		}
	}
	ds, err := o.search(ctx, a, "Patient", idsExpr(donors))
	if err != nil {
		return err
	}
	t.add(ds...)
	return nil
}

// search returns every match of filter on typ under a, in chunks the
// backends evaluate quickly (a nil filter is none: no matches).
func (o *Ops) search(ctx context.Context, a store.Access, typ string, filters []store.Expr) ([]*store.Version, error) {
	var out []*store.Version
	for _, f := range filters {
		q := store.Query{Access: a, Type: typ, Filter: f, Count: internalPageCount}
		for {
			page, err := o.store.Search(ctx, q)
			if err != nil {
				return nil, err
			}
			out = append(out, page.Versions...)
			if !page.More || len(page.Versions) == 0 {
				break
			}
			last := page.Versions[len(page.Versions)-1]
			q.After = &store.SearchCursor{Type: last.Type, ID: last.ID}
		}
	}
	return out, nil
}

// refsTo is the conditions "param references one of targetType/ids", in
// chunks of at most maxOr.
func refsTo(param, targetType string, ids []string) []store.Expr {
	var out []store.Expr
	for len(ids) > 0 {
		n := min(len(ids), maxOr)
		or := make(store.Or, 0, n)
		for _, id := range ids[:n] {
			or = append(or, store.Reference{Param: param, Type: targetType, ID: id})
		}
		out = append(out, or)
		ids = ids[n:]
	}
	return out
}

// idsExpr is the conditions "_id is one of ids", in chunks.
func idsExpr(ids []string) []store.Expr {
	var out []store.Expr
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	for len(ids) > 0 {
		n := min(len(ids), maxOr)
		out = append(out, store.ID{IDs: ids[:n]})
		ids = ids[n:]
	}
	return out
}

func ids(vs []*store.Version) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.ID
	}
	return out
}

// head is what the trace reads of a resource's JSON.
type head struct {
	Meta struct {
		Profile []string `json:"profile"`
	} `json:"meta"`
	Identifier []struct {
		System string `json:"system"`
	} `json:"identifier"`
}

func (h head) claims(profile string) bool {
	return slices.Contains(h.Meta.Profile, profileBase+profile)
}

func (h head) hasSystem(system string) bool {
	for _, i := range h.Identifier {
		if i.System == system {
			return true
		}
	}
	return false
}

// isDonor reports whether a Patient is a stool donor (by profile or donor
// code), as the access policy recognises one.
func isDonor(v *store.Version) bool {
	var h head
	_ = json.Unmarshal(v.Resource, &h)
	return v.Type == "Patient" && (h.claims("cmts-donor") || h.hasSystem(donorCodeSystem))
}

// isLot reports whether a Specimen is a product lot.
func isLot(v *store.Version) bool {
	var h head
	_ = json.Unmarshal(v.Resource, &h)
	return v.Type == "Specimen" && (h.claims("cmts-microbiota-product") || h.hasSystem(lotSystem))
}

// productLots are the ids of the Specimens a Procedure's product-lot
// extensions reference.
func productLots(body []byte) []string {
	var b struct {
		Extension []struct {
			URL            string `json:"url"`
			ValueReference struct {
				Reference string `json:"reference"`
			} `json:"valueReference"`
		} `json:"extension"`
	}
	_ = json.Unmarshal(body, &b)
	var out []string
	for _, e := range b.Extension {
		if e.URL != productLotURL {
			continue
		}
		if typ, id, ok := strings.Cut(e.ValueReference.Reference, "/"); ok && typ == "Specimen" {
			out = append(out, id)
		}
	}
	return out
}

// specimenLinks are a Specimen's parent ids and its subject's id when the
// subject is a Patient.
func specimenLinks(body []byte) (parents []string, subject string) {
	var b struct {
		Parent []struct {
			Reference string `json:"reference"`
		} `json:"parent"`
		Subject struct {
			Reference string `json:"reference"`
		} `json:"subject"`
	}
	_ = json.Unmarshal(body, &b)
	for _, pr := range b.Parent {
		if typ, id, ok := strings.Cut(pr.Reference, "/"); ok && typ == "Specimen" {
			parents = append(parents, id)
		}
	}
	if typ, id, ok := strings.Cut(b.Subject.Reference, "/"); ok && typ == "Patient" {
		subject = id
	}
	return parents, subject
}
