// Package export runs FHIR Bulk Data Access (v2) $export jobs: it
// implements fhir.Exports for the REST layer and a worker that runs the
// jobs. Jobs are records in the store (see JobTenant), so any server
// instance on the same store answers for them and a job a restart
// interrupted is taken up again where it stopped; their NDJSON files are
// kept by a Files (GridFS on MongoDB, a directory on the embedded store).
// What a job exports is what its caller may see: the store
// scope, each resource and its body come from the access policy.
package export

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/store"
)

// Indexer computes search index entries (search.Engine implements it): job
// records are indexed as the server indexes any resource, and a Patient
// export finds each resource's patient references through it.
type Indexer interface {
	Entries(resourceType string, body []byte) ([]store.IndexEntry, error)
	References(resourceType string, body []byte, param string) ([]store.IndexEntry, error)
	// Compile compiles a search of resourceType (a _typeFilter query).
	Compile(resourceType string, params url.Values) (store.Expr, error)
}

// Options configure an Exporter. Store, Policy, Indexer, Types and Files
// are required.
type Options struct {
	Store   store.Store
	Policy  fhir.Policy
	Indexer Indexer
	// Types are the resource types a system export covers unless _type
	// narrows it (the codec's R4 types).
	Types []string
	// Compartment names the reference parameters that put a resource of typ
	// in a patient's compartment (none: typ is not in it); a Patient
	// export covers those types.
	Compartment func(typ string) []string
	// Files keeps the jobs' files; every instance on Store must share it.
	Files Files
	// MaxJobs bounds the jobs a tenant may have accepted or running at once
	// (default 2); one more is answered 429.
	MaxJobs int
	// TTL is how long a completed job and its files are kept (default 24 h).
	TTL time.Duration
	// Poll is how often the worker looks for jobs to run and expired ones
	// to remove (default 1 s); also the Retry-After a running job answers.
	Poll time.Duration
	// Stale is how long a running job's lease lasts without the worker
	// renewing it; after it any worker takes the job up, resuming after
	// its last finished type (default 1 min). A worker that is stopped
	// releases its job at once.
	Stale time.Duration
	// PageSize is the number of resources read from the store at a time
	// (default 500): memory stays flat in the size of the export.
	PageSize int
	Now      func() time.Time
	Logger   *slog.Logger
}

// Exporter implements fhir.Exports and runs the jobs (Run).
type Exporter struct {
	opts Options
	// wake tells the worker a job was accepted.
	wake chan struct{}
}

var _ fhir.Exports = (*Exporter)(nil)

// New checks the options.
func New(opts Options) (*Exporter, error) {
	switch {
	case opts.Store == nil:
		return nil, errors.New("export: no store")
	case opts.Policy == nil:
		return nil, errors.New("export: no access policy")
	case opts.Indexer == nil:
		return nil, errors.New("export: no indexer")
	case len(opts.Types) == 0:
		return nil, errors.New("export: no resource types")
	case opts.Files == nil:
		return nil, errors.New("export: no place for the files")
	}
	if opts.Compartment == nil {
		opts.Compartment = func(string) []string { return nil }
	}
	if opts.MaxJobs <= 0 {
		opts.MaxJobs = 2
	}
	if opts.TTL <= 0 {
		opts.TTL = 24 * time.Hour
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.Stale <= 0 {
		opts.Stale = time.Minute
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 500
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Exporter{opts: opts, wake: make(chan struct{}, 1)}, nil
}

// The output formats the IG names for NDJSON; we write no other.
var outputFormats = []string{"application/fhir+ndjson", "application/ndjson", "ndjson"}

func unsupported(name, value string) *fhir.Error {
	return fhir.Invalid(fhir.IssueNotSupported, "Unsupported $export parameter "+name+"="+value,
		"不支持的 $export 参数 "+name+"="+value).WithExpression(name)
}

// Kickoff implements fhir.Exports.
func (e *Exporter) Kickoff(ctx context.Context, p *fhir.Principal, k fhir.ExportKickoff) (string, error) {
	allow := func() error { return e.opts.Policy.Allow(p, fhir.ActionSearchSystem, "") }
	if k.Level == "Patient" || k.Level == "Group" {
		allow = func() error { return e.opts.Policy.Allow(p, fhir.ActionSearchType, "Patient") }
	}
	if err := allow(); err != nil {
		return "", err
	}
	now := e.opts.Now().UTC()
	j := &job{Owner: *p, Level: k.Level, Group: k.Group, Request: k.Request, State: stateAccepted, TransactionTime: now}
	j.Owner.Grants = nil
	if k.Level == "Group" {
		if _, err := e.cohort(ctx, p, k.Group); err != nil {
			return "", err
		}
	}
	for name, values := range k.Params {
		for _, v := range values {
			switch name {
			case "_outputFormat":
				if !slices.Contains(outputFormats, v) && !k.Lenient {
					return "", unsupported(name, v)
				}
			case "_type":
				for _, t := range strings.Split(v, ",") {
					t = strings.TrimSpace(t)
					switch {
					case slices.Contains(e.opts.Types, t):
						if !slices.Contains(j.Types, t) {
							j.Types = append(j.Types, t)
						}
					case !k.Lenient:
						return "", unsupported(name, t)
					}
				}
			case "_typeFilter":
				if err := e.typeFilter(p, j, v); err != nil && !k.Lenient {
					return "", err
				}
			case "_elements":
				for _, el := range strings.Split(v, ",") {
					if el = strings.TrimSpace(el); el != "" {
						j.Elements = append(j.Elements, el)
					}
				}
			case "_since":
				t, err := parseInstant(v)
				if err != nil {
					return "", fhir.Invalid(fhir.IssueValue, "_since must be a FHIR instant", "_since 必须是 FHIR instant 时间").WithExpression(name)
				}
				j.Since = t
			default:
				if !k.Lenient {
					return "", unsupported(name, v)
				}
			}
		}
	}
	// Under handling=lenient a _type of no known type is ignored as a
	// whole: the export covers every type, as without _type.
	// An explicitly asked type the caller's scopes do not allow is refused
	// here; without _type such types are left out silently.
	for _, t := range j.Types {
		if _, err := e.opts.Policy.Narrow(p, t); err != nil {
			return "", err
		}
	}
	running, err := e.jobs(ctx, 1<<20, stateAccepted, stateRunning)
	if err != nil {
		return "", err
	}
	n := 0
	for _, r := range running {
		if r.Owner.Tenant == p.Tenant {
			n++
		}
	}
	if n >= e.opts.MaxJobs {
		return "", fhir.TooManyJobs(10 * e.opts.Poll)
	}
	j.ID = newID()
	if err := e.save(ctx, j); err != nil {
		return "", err
	}
	select {
	case e.wake <- struct{}{}:
	default:
	}
	return j.ID, nil
}

// notInTypeFilter are the search result parameters a _typeFilter query may
// not use: it selects resources, it does not shape a result.
var notInTypeFilter = []string{"_include", "_revinclude", "_sort", "_count", "_summary", "_elements", "_total", "_contained", "_containedType"}

// typeFilter checks the _typeFilter value v (comma-separated queries
// Type?params) and records its queries in j.
func (e *Exporter) typeFilter(p *fhir.Principal, j *job, v string) error {
	for _, q := range strings.Split(v, ",") {
		typ, query, _ := strings.Cut(strings.TrimSpace(q), "?")
		params, err := url.ParseQuery(query)
		if err != nil || !slices.Contains(e.opts.Types, typ) {
			return unsupported("_typeFilter", q)
		}
		for name := range params {
			if slices.Contains(notInTypeFilter, strings.SplitN(name, ":", 2)[0]) {
				return unsupported("_typeFilter", q)
			}
		}
		if _, err := e.opts.Indexer.Compile(typ, params); err != nil {
			return err
		}
		if err := e.opts.Policy.CheckSearch(p, typ, params, nil); err != nil {
			return err
		}
		if j.TypeFilters == nil {
			j.TypeFilters = map[string][]string{}
		}
		j.TypeFilters[typ] = append(j.TypeFilters[typ], query)
	}
	return nil
}

// filter is the store condition on resources of t: the caller's narrowing
// and, when j has _typeFilter queries for t, any one of them.
func (e *Exporter) filter(j *job, t string, narrow store.Expr) (store.Expr, error) {
	qs := j.TypeFilters[t]
	if len(qs) == 0 {
		return narrow, nil
	}
	var or store.Or
	for _, q := range qs {
		params, err := url.ParseQuery(q)
		if err != nil {
			return nil, err
		}
		x, err := e.opts.Indexer.Compile(t, params)
		if err != nil {
			return nil, err
		}
		if x == nil {
			return narrow, nil // one query matches everything
		}
		or = append(or, x)
	}
	if narrow == nil {
		return or, nil
	}
	return store.And{narrow, or}, nil
}

// parseInstant reads a FHIR instant (or dateTime with a zone).
func parseInstant(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05Z07:00", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errors.New("not an instant")
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// owned loads job id when p started it; otherwise it does not exist.
func (e *Exporter) owned(ctx context.Context, p *fhir.Principal, id string) (*job, error) {
	j, err := e.load(ctx, id)
	switch {
	case errors.Is(err, errNoJob), err == nil && !j.owns(p),
		err == nil && j.State == stateDone && !e.opts.Now().Before(j.Expires):
		return nil, jobNotFound(id)
	case err != nil:
		return nil, err
	}
	return j, nil
}

func jobNotFound(id string) *fhir.Error {
	return fhir.Invalid(fhir.IssueNotFound, "No export job "+id+" (never started, cancelled or expired)",
		"导出任务 "+id+" 不存在（未创建、已取消或已过期）").WithStatus(http.StatusNotFound)
}

// Status implements fhir.Exports.
func (e *Exporter) Status(ctx context.Context, p *fhir.Principal, id, base string) (*fhir.ExportStatus, error) {
	j, err := e.owned(ctx, p, id)
	if err != nil {
		return nil, err
	}
	switch j.State {
	case stateDone:
		m, err := manifest(j, base)
		if err != nil {
			return nil, err
		}
		return &fhir.ExportStatus{Done: true, Manifest: m, Expires: j.Expires}, nil
	case stateFailed:
		return nil, fhir.Invalid(fhir.IssueException, "The export failed", "导出失败").
			WithStatus(http.StatusInternalServerError).WithDiagnostics(j.Error)
	}
	progress := j.Progress
	if progress == "" {
		progress = j.State
	}
	return &fhir.ExportStatus{Progress: progress, RetryAfter: e.opts.Poll}, nil
}

// manifest is the completion manifest of j.
func manifest(j *job, base string) ([]byte, error) {
	type out struct {
		Type  string `json:"type"`
		URL   string `json:"url"`
		Count int    `json:"count"`
	}
	m := struct {
		TransactionTime     string `json:"transactionTime"`
		Request             string `json:"request"`
		RequiresAccessToken bool   `json:"requiresAccessToken"`
		Output              []out  `json:"output"`
		Error               []out  `json:"error"`
		Deleted             []out  `json:"deleted,omitempty"`
	}{TransactionTime: j.TransactionTime.UTC().Format(time.RFC3339Nano), Request: j.Request, RequiresAccessToken: true,
		Output: []out{}, Error: []out{}}
	u := func(f file) out {
		return out{Type: f.Type, URL: base + "/$export-file/" + url.PathEscape(j.ID) + "/" + url.PathEscape(f.Name), Count: f.Count}
	}
	for _, f := range j.Output {
		m.Output = append(m.Output, u(f))
	}
	for _, f := range j.Errors {
		m.Error = append(m.Error, u(f))
	}
	for _, f := range j.Deleted {
		m.Deleted = append(m.Deleted, u(f))
	}
	return marshal(m)
}

// Cancel implements fhir.Exports.
func (e *Exporter) Cancel(ctx context.Context, p *fhir.Principal, id string) error {
	for {
		j, err := e.owned(ctx, p, id)
		if err != nil {
			return err
		}
		// The worker renews its lease with compare-and-swap writes too: on
		// a lost race, read again and retry.
		err = e.remove(ctx, j)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return err
		}
		// A worker still writing stops at its next lease renewal and
		// removes what it wrote after this (see Step).
		return e.opts.Files.Remove(ctx, id)
	}
}

// Open implements fhir.Exports.
func (e *Exporter) Open(ctx context.Context, p *fhir.Principal, id, name string) (io.ReadCloser, error) {
	j, err := e.owned(ctx, p, id)
	if err != nil {
		return nil, err
	}
	if j.State == stateDone {
		for _, f := range slices.Concat(j.Output, j.Errors, j.Deleted) {
			if f.Name == name {
				r, err := e.opts.Files.Open(ctx, id, name)
				if errors.Is(err, ErrNoFile) {
					break
				}
				return r, err
			}
		}
	}
	return nil, fhir.Invalid(fhir.IssueNotFound, "No such export file", "导出文件不存在").WithStatus(http.StatusNotFound)
}
