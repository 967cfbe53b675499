package audit

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/bundle"
	"github.com/fmtbank/cmts/store"
)

// Client is what the REST layer knows of where a request came from; it
// travels in the request's context (fhir.WithClient) to the writer's Hook.
type Client = fhir.Client

// NewContext returns ctx carrying c (fhir.WithClient).
func NewContext(ctx context.Context, c Client) context.Context { return fhir.WithClient(ctx, c) }

// ClientFrom returns the Client in ctx (zero when there is none).
func ClientFrom(ctx context.Context) Client { return fhir.ClientFrom(ctx) }

// Hook audits the writes of a bundle.Writer (set it as
// bundle.Options.Auditor): the AuditEvent of every entry written is
// committed in the same store transaction as the entry's data, and the
// failure of a batch entry is queued to Failures.
type Hook struct {
	Maker *Maker
	// Failures receives the records of failed writes (nil: not recorded by
	// the hook).
	Failures *Batcher
}

var _ bundle.Auditor = (*Hook)(nil)

// NewHook checks its parts.
func NewHook(m *Maker, failures *Batcher) (*Hook, error) {
	if m == nil {
		return nil, errors.New("audit: no maker")
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return &Hook{Maker: m, Failures: failures}, nil
}

// AuditWrites makes one AuditEvent per entry, stamped with the
// transaction's time now (as recorded and as meta.lastUpdated), as writes to
// commit with the data. It does not touch the store.
func (h *Hook) AuditWrites(ctx context.Context, p *fhir.Principal, now time.Time, entries []*bundle.Entry, results []*bundle.Result) ([]store.Write, error) {
	c := ClientFrom(ctx)
	if len(entries) > 1 {
		// A transaction is one interaction: one event names every version
		// it stored, which keeps the trail's cost per entry to an index
		// entry rather than an event of its own.
		r := Record{Interaction: Transaction, Principal: p, Remote: c.Remote, RequestID: c.RequestID, Time: now, Status: http.StatusOK}
		for _, res := range results {
			if res == nil || res.Version == nil || res.Unchanged {
				continue
			}
			v := res.Version
			r.Written = append(r.Written, v.Type+"/"+v.ID+"/_history/"+strconv.FormatInt(v.VersionID, 10))
			if v.Type == "Patient" {
				r.Patients = append(r.Patients, v.ID)
			}
		}
		w, err := h.Maker.Write(r, now)
		if err != nil {
			return nil, err
		}
		return []store.Write{w}, nil
	}
	out := make([]store.Write, 0, len(entries))
	for i, e := range entries {
		var res *bundle.Result
		if i < len(results) {
			res = results[i]
		}
		r := EntryRecord(p, e, res)
		r.Remote, r.RequestID, r.Time = c.Remote, c.RequestID, now
		w, err := h.Maker.Write(r, now)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}

// AuditFailure queues one failure record per entry: entries failed with
// err (its FHIR status; 500 when it has none) and nothing of them was
// stored. The writer calls it for a batch entry that failed; the REST layer
// may call it for a REST write or transaction that failed, to name the
// resources it tried to write. It does not wait longer than Batcher.Add.
func (h *Hook) AuditFailure(ctx context.Context, p *fhir.Principal, entries []*bundle.Entry, err error) {
	if h.Failures == nil {
		return
	}
	c := ClientFrom(ctx)
	status := fhir.AsError(err).Status
	now := h.Failures.opts.Now()
	for _, e := range entries {
		r := EntryRecord(p, e, nil)
		r.Status, r.Remote, r.RequestID, r.Time = status, c.Remote, c.RequestID, now
		h.Failures.Add(r)
	}
}

// EntryRecord is the record of a write entry (POST, PUT, PATCH, DELETE) for
// p, with its result when it succeeded (nil: Status left 0, for the caller
// to set). Remote, RequestID and Time are left for the caller.
func EntryRecord(p *fhir.Principal, e *bundle.Entry, res *bundle.Result) Record {
	r := Record{Principal: p, Type: e.Type, ID: e.ID}
	switch e.Method {
	case http.MethodPost:
		// The server ignores an id sent with a create.
		r.Interaction, r.ID = Create, ""
		// ifNoneExist is "identifier=..." or, as some clients send it,
		// "Patient?identifier=...".
		r.Query = e.IfNoneExist
		if _, q, ok := strings.Cut(r.Query, "?"); ok {
			r.Query = q
		}
	case http.MethodPut:
		r.Interaction = Update
	case http.MethodPatch:
		r.Interaction = Patch
	case http.MethodDelete:
		r.Interaction = Delete
	}
	if r.Query == "" && len(e.Query) > 0 {
		r.Query = e.Query.Encode()
	}
	if res != nil {
		r.Status = res.Status
		if v := res.Version; v != nil {
			r.Type, r.ID, r.Version = v.Type, v.ID, strconv.FormatInt(v.VersionID, 10)
		}
	}
	return r
}
