package ops

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/jsonscan"
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
	seen  map[ref]bool
	// Lots are the product lots among Found.
	Lots []*store.Version
}

// ref names a resource.
type ref struct{ typ, id string }

func (t *Trace) add(vs ...*store.Version) []*store.Version {
	var fresh []*store.Version
	for _, v := range vs {
		k := ref{v.Type, v.ID}
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
	t := &Trace{Start: start, seen: map[ref]bool{}}
	t.add(start)
	switch {
	case typ == "Specimen" || isDonor(start):
		var g *traceGraph
		if g, err = o.traceGraph(ctx); err != nil {
			return nil, err
		}
		from := []*store.Version{start}
		if typ == "Patient" {
			from = t.add(heads(g.specimens.referring(a, linkKeys("subject", "Patient", from)))...)
		}
		err = o.forward(ctx, a, t, g, from)
	default:
		err = o.backward(ctx, a, t, start)
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

// forward adds the specimens derived from from (any depth), the procedures
// that used any of them, their recipients and their adverse events, as the
// searches Specimen?parent=, Procedure?product-lot=,
// Patient?_has:Procedure:subject:product-lot= and
// AdverseEvent?substance:Procedure.product-lot= find them under a; but
// walked in the look-back's views (traceGraph), so that a look-back reads
// from the store only what changed since the last one.
func (o *Ops) forward(ctx context.Context, a store.Access, t *Trace, g *traceGraph, from []*store.Version) error {
	specimens := slices.Clone(from)
	frontier := from
	for len(frontier) > 0 {
		frontier = t.add(heads(g.specimens.referring(a, linkKeys("parent", "Specimen", frontier)))...)
		specimens = append(specimens, frontier...)
	}
	for _, s := range specimens {
		if isLot(s) {
			t.Lots = append(t.Lots, s)
		}
	}
	procs := g.procedures.referring(a, linkKeys(paramProductLot, "Specimen", specimens))
	var subjects []string
	for _, r := range procs {
		if s := r.x.(traceFacts).subject; s != "" {
			subjects = append(subjects, s)
		}
	}
	found, missing := g.patients.byID(a, subjects)
	patients := heads(found)
	if len(missing) > 0 {
		// A Patient only its own tenant reads (one with a donor code) is
		// not in the view, which reads as a reader of every tenant: the
		// caller's own are visible under a, so the store is asked.
		more, err := o.search(ctx, a, "Patient", idsExpr(missing))
		if err != nil {
			return err
		}
		patients = append(patients, more...)
		slices.SortFunc(patients, func(x, y *store.Version) int { return strings.Compare(x.ID, y.ID) })
	}
	events := g.events.referring(a, linkKeys(paramSubstance, "Procedure", heads(procs)))
	t.add(heads(procs)...)
	t.add(patients...)
	t.add(heads(events)...)
	return nil
}

// traceGraph are the look-back's views: every tenant's current Specimens,
// Procedures, Patients and AdverseEvents with their bodies and the
// references the walk follows, kept up to date from the store's history
// like the reports' (facts.go). Like them they hold what depends on the
// version alone; who sees what is decided on every look-back, by a here
// and by the policy when the Bundle is made.
type traceGraph struct {
	specimens, procedures, patients, events *view
}

// traceGraph is the look-back's views, brought up to date.
func (o *Ops) traceGraph(ctx context.Context) (*traceGraph, error) {
	g := &traceGraph{
		specimens:  o.views.make("trace Specimen", "Specimen", decodeTrace, viewOptions{bodies: true}),
		procedures: o.views.make("trace Procedure", "Procedure", decodeTrace, viewOptions{bodies: true}),
		patients:   o.views.make("trace Patient", "Patient", decodeTrace, viewOptions{bodies: true, owners: true}),
		events:     o.views.make("trace AdverseEvent", "AdverseEvent", decodeTrace, viewOptions{bodies: true}),
	}
	var eg errgroup.Group
	for _, v := range []*view{g.specimens, g.procedures, g.patients, g.events} {
		eg.Go(func() error { return v.sync(ctx, o.store, o.now) })
	}
	return g, eg.Wait()
}

// traceFacts is what the look-back keeps of a version besides its body:
// the references the walk follows (linkKey: Specimen.parent and subject,
// Procedure's product-lot, AdverseEvent.suspectEntity.instance as the
// substance parameter) and a Procedure's subject when a Patient.
type traceFacts struct {
	refs    []string
	subject string
}

func (f traceFacts) links() []string { return f.refs }

// linkKey is a reference of param to typ/id as a view indexes it.
func linkKey(param, typ, id string) string { return param + " " + typ + "/" + id }

// linkKeys are the references of param to each of vs (of type typ).
func linkKeys(param, typ string, vs []*store.Version) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = linkKey(param, typ, v.ID)
	}
	return out
}

// relativeRef is a relative literal reference, optionally versioned: the
// only kind the search index (fhir/search) records with its type and id,
// so the only kind a search by reference finds.
var relativeRef = regexp.MustCompile(`^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?$`)

// target is the type and id a reference names, as the index reads it (ok
// false for any other reference).
func target(ref string) (typ, id string, ok bool) {
	m := relativeRef.FindStringSubmatch(ref)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// decodeTrace reads a Specimen's, Procedure's or AdverseEvent's traceFacts
// (a Patient has none).
func decodeTrace(b []byte) (any, error) {
	var f traceFacts
	link := func(param string, at int) (int, error) {
		r, next, err := referenceAt(b, at)
		if typ, id, ok := target(r.Reference); ok {
			f.refs = append(f.refs, linkKey(param, typ, id))
			if param == "subject" && typ == "Patient" {
				f.subject = id
			}
		}
		return next, err
	}
	_, err := jsonscan.Object(b, 0, func(k []byte, at int) (int, error) {
		switch string(k) {
		case "parent":
			return jsonscan.Array(b, at, func(at int) (int, error) { return link("parent", at) })
		case "subject":
			return link("subject", at)
		case "extension":
			return jsonscan.Array(b, at, func(at int) (int, error) {
				var url string
				var ref reference
				next, err := jsonscan.Object(b, at, func(k []byte, at int) (int, error) {
					switch string(k) {
					case "url":
						s, next, err := jsonscan.String(b, at)
						url = s
						return next, err
					case "valueReference":
						r, next, err := referenceAt(b, at)
						ref = r
						return next, err
					}
					return jsonscan.SkipValue(b, at)
				})
				if typ, id, ok := target(ref.Reference); ok && url == productLotURL {
					f.refs = append(f.refs, linkKey(paramProductLot, typ, id))
				}
				return next, err
			})
		case "suspectEntity":
			return jsonscan.Array(b, at, func(at int) (int, error) {
				return jsonscan.Object(b, at, func(k []byte, at int) (int, error) {
					if string(k) != "instance" {
						return jsonscan.SkipValue(b, at)
					}
					return link(paramSubstance, at)
				})
			})
		}
		return jsonscan.SkipValue(b, at)
	})
	return f, err
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
