// Package ops runs the WMT safety operations of wmt-ig.md ("Operations") on
// stored data: look-back and recall ($trace, $recall). It reads the store
// through the search index and decides nothing about access itself: every
// resource it answers goes through the access policy (fhir.Policy), and the
// REST layer reaches it through fhir.Operations.
package ops

import (
	"context"
	"net/http"
	"net/url"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/store"
)

// Ops runs the operations; it implements fhir.Operations.
type Ops struct {
	store  store.Store
	policy fhir.Policy
}

var _ fhir.Operations = (*Ops)(nil)

// New returns the operations over st, showing results through pol.
func New(st store.Store, pol fhir.Policy) *Ops { return &Ops{store: st, policy: pol} }

// Offers implements fhir.Operations.
func (o *Ops) Offers(typ, name string, instance bool) bool {
	switch name {
	case "$trace":
		return instance && (typ == "Specimen" || typ == "Patient")
	}
	return false
}

// Operation implements fhir.Operations.
func (o *Ops) Operation(ctx context.Context, p *fhir.Principal, typ, id, name string, params url.Values, body []byte) (int, []byte, string, bool, error) {
	if !o.Offers(typ, name, id != "") {
		return 0, nil, "", false, nil
	}
	switch name {
	case "$trace":
		t, err := o.Trace(ctx, p, typ, id)
		if err != nil {
			return 0, nil, "", true, err
		}
		out, err := o.Bundle(p, t)
		return http.StatusOK, out, "", true, err
	}
	return 0, nil, "", false, nil
}
