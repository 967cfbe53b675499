package fhir

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Operations runs the server's own operations on stored data (the WMT
// safety operations of wmt-ig.md: $trace, $recall, ...). The REST layer
// dispatches to it through this interface, so it stays generic; the
// implementation (package fhir/ops) decides what the caller may see through
// the Policy.
type Operations interface {
	// Offers reports whether the operation name is one it runs on typ, at
	// instance level (instance) or type level; the REST layer asks before
	// it reads the request's body.
	Offers(typ, name string, instance bool) bool
	// Operation runs the operation name ("$trace") on an instance of typ
	// (id set) or at type level (id ""), for p, with the request's
	// parameters (the query string, and a Parameters body's values as
	// text) and its raw body (nil for a GET). It answers the status, the
	// body and its content type; ok is false when it does not offer the
	// operation on typ. A refusal or a failure is an *Error.
	Operation(ctx context.Context, p *Principal, typ, id, name string, params url.Values, body []byte) (status int, out []byte, contentType string, ok bool, err error)
}

// Exports runs FHIR Bulk Data Access (v2) $export jobs: the REST layer
// answers the kick-off at /$export, /Patient/$export and /Group/{id}/$export
// with 202 and a status URL, and serves the status, cancel and file URLs
// from it. Jobs and their files are kept where every server instance finds
// them (the store), never only in one process's memory. Every method
// answers a job only to the principal that started it (same tenant, issuer
// and subject); for anyone else the job does not exist (404).
type Exports interface {
	// Kickoff checks the request and records a new job for p, returning its
	// id. Errors: 400 for a parameter it does not support (unless
	// k.Lenient, when the parameter is ignored), 403 when p may not export
	// what it asks for, 429 (with RetryAfter set) when p's tenant has too
	// many jobs running.
	Kickoff(ctx context.Context, p *Principal, k ExportKickoff) (job string, err error)
	// Status reports the job; base is the FHIR base URL the manifest's
	// file URLs start with. Errors: 404 for an unknown, cancelled or
	// expired job; the job's own failure as an *Error.
	Status(ctx context.Context, p *Principal, job, base string) (*ExportStatus, error)
	// Cancel stops the job and removes its files; the job is unknown
	// afterwards. Errors: 404.
	Cancel(ctx context.Context, p *Principal, job string) error
	// Open opens one output file of a completed job for streaming (NDJSON).
	// Errors: 404.
	Open(ctx context.Context, p *Principal, job, file string) (io.ReadCloser, error)
}

// ExportKickoff is an $export request as the REST layer read it.
type ExportKickoff struct {
	// Level is "system", "Patient" or "Group" (Group names the group).
	Level, Group string
	// Params are the kick-off's parameters (query string and Parameters body).
	Params url.Values
	// Lenient is Prefer: handling=lenient: unsupported parameters are
	// ignored instead of refused.
	Lenient bool
	// Request is the kick-off URL as sent (the manifest's request).
	Request string
}

// ExportStatus is a job's state as the status URL shows it.
type ExportStatus struct {
	// Done is set when the job completed; Manifest is then its JSON.
	Done     bool
	Manifest []byte
	// Expires is when a completed job and its files are removed.
	Expires time.Time
	// Progress is a short text for X-Progress while the job runs.
	Progress string
	// RetryAfter is how long a client should wait before polling again.
	RetryAfter time.Duration
}

// TooManyJobs: the tenant has as many export jobs running as it may (429);
// the client retries after retryAfter.
func TooManyJobs(retryAfter time.Duration) *Error {
	e := newError(http.StatusTooManyRequests, IssueThrottled,
		"Too many export jobs are running; try again later", "正在运行的导出任务过多，请稍后重试")
	e.RetryAfter = retryAfter
	return e
}
