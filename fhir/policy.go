package fhir

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/fmtbank/cmts/store"
)

// Action is a REST interaction, named by its code in
// http://hl7.org/fhir/restful-interaction; the access policy and the audit
// trail speak of requests in these terms.
type Action string

// The R4 restful-interaction codes.
const (
	ActionRead            Action = "read"
	ActionVRead           Action = "vread"
	ActionUpdate          Action = "update"
	ActionPatch           Action = "patch"
	ActionDelete          Action = "delete"
	ActionHistoryInstance Action = "history-instance"
	ActionHistoryType     Action = "history-type"
	ActionHistorySystem   Action = "history-system"
	ActionCreate          Action = "create"
	ActionSearchType      Action = "search-type"
	ActionSearchSystem    Action = "search-system"
	ActionCapabilities    Action = "capabilities"
	ActionTransaction     Action = "transaction"
	ActionBatch           Action = "batch"
	ActionOperation       Action = "operation"
)

// ActionOf is the interaction an HTTP method asks for on a resource (a
// Bundle entry's, or a request's that never reached a route): POST create,
// PUT update, PATCH patch, DELETE delete, anything else read.
func ActionOf(method string) Action {
	switch method {
	case http.MethodPost:
		return ActionCreate
	case http.MethodPut:
		return ActionUpdate
	case http.MethodPatch:
		return ActionPatch
	case http.MethodDelete:
		return ActionDelete
	}
	return ActionRead
}

// Policy is the access policy decision point: access = tenant ∩ role ∩
// SMART scope ∩ patient context (design.md), decided here and nowhere else.
// The REST layer asks it about every interaction, every search before it
// runs, every resource before it leaves the server and every version before
// it is stored. Refusals are *Error values: 403 for what the caller may not
// do at all; what the caller may not see is simply absent (a read answers
// 404, as for a resource that does not exist).
type Policy interface {
	// Allow decides whether p may make an interaction of this kind on
	// resources of typ ("" at system level), before any data is touched.
	Allow(p *Principal, a Action, typ string) error
	// Access is the store scope of p's reads: the tenants p sees.
	Access(p *Principal) store.Access
	// CheckSearch decides whether p may run a search of typ with these
	// query parameters (names and values as sent) that touches resources
	// of the types in touched (chains, _has, _include, _revinclude).
	CheckSearch(p *Principal, typ string, params url.Values, touched []string) error
	// Narrow is the condition a search of typ by p must add to its own
	// (the patient compartment, SMART v2 ?param narrowing); nil for none.
	Narrow(p *Principal, typ string) (store.Expr, error)
	// Readable reports whether p may see v, which the store returned under
	// Access(p) (a read, an included resource, a history entry).
	Readable(p *Principal, v *store.Version) bool
	// View is the body of v as p sees it: as stored, or through the
	// de-identified view (nil for a tombstone).
	View(p *Principal, v *store.Version) ([]byte, error)
	// TraceView is v as p sees it in a look-back or recall ($trace), which
	// crosses tenants by design (wmt-ig.md, "Who owns what"): what p may
	// read, as View shows it, and for a stool bank the other tenants'
	// resources its lots reached (recipients, procedures, adverse events),
	// de-identified; a donor never leaves its bank. v was read with an
	// access wider than Access(p); ok is false when p may not see it.
	TraceView(p *Principal, v *store.Version) (body []byte, ok bool, err error)
	// Writable decides whether p may store next as the version after cur
	// (nil: the resource does not exist yet; next.Deleted for a delete);
	// next has its Resource and Index set. It sets next.Reach and
	// next.Addressee; for an update by the tenant cur is addressed to, it
	// sets next.Tenant to cur's (the owner keeps the resource).
	Writable(p *Principal, cur, next *store.Version) error
}

// AuditRequest is one answered request, as the audit trail records it: who,
// what (never a value of the query, never resource content), the outcome.
type AuditRequest struct {
	Action Action
	// Principal is who made the request (nil: not authenticated).
	Principal *Principal
	// Remote is the client's address; RequestID its X-Request-Id.
	Remote, RequestID string
	Time              time.Time
	Status            int
	// Type, ID and Version name the resource acted on, as far as known.
	Type, ID, Version string
	// Operation is the operation's name with its "$", for ActionOperation.
	Operation string
	// Query is the query string as sent; only its parameter names are kept.
	Query string
}

// AuditTrail records answered requests (auth/audit implements it). Writes
// that succeeded are not given to it: they are recorded in the same store
// transaction as their data.
type AuditTrail interface {
	Requested(ctx context.Context, r AuditRequest)
}

// Client is where a request came from, as the audit trail records it.
type Client struct {
	// Remote is the client's IP address.
	Remote string
	// RequestID is the request's X-Request-Id ("" for none).
	RequestID string
}

type clientKey struct{}

// WithClient returns ctx carrying c, for whatever records the request's
// effects further down (the Writer's audit hook).
func WithClient(ctx context.Context, c Client) context.Context {
	return context.WithValue(ctx, clientKey{}, c)
}

// ClientFrom returns the Client in ctx (zero when there is none).
func ClientFrom(ctx context.Context) Client {
	c, _ := ctx.Value(clientKey{}).(Client)
	return c
}
