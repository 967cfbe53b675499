package bundle

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/store"
)

// Reader serves a GET or HEAD entry (or, in a batch, an operation) as the
// REST API would for p, after the writes of the Bundle (so a transaction's
// reads see its own writes).
type Reader interface {
	ReadEntry(ctx context.Context, p *fhir.Principal, e *Entry) (status int, header http.Header, body []byte)
}

// Reply says how the response is written: the FHIR base for fullUrls, the
// Prefer return mode of every entry (minimal, representation or
// OperationOutcome) and the language of outcomes.
type Reply struct {
	Base   string
	Return string
	Lang   fhir.Language
}

type responseBundle struct {
	ResourceType string          `json:"resourceType"`
	ID           string          `json:"id"`
	Meta         responseMeta    `json:"meta"`
	Type         string          `json:"type"`
	Entry        []responseEntry `json:"entry"`
}

type responseMeta struct {
	LastUpdated string `json:"lastUpdated"`
}

type responseEntry struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Response entryResponse   `json:"response"`
}

type entryResponse struct {
	Status       string          `json:"status"`
	Location     string          `json:"location,omitempty"`
	Etag         string          `json:"etag,omitempty"`
	LastModified string          `json:"lastModified,omitempty"`
	Outcome      json.RawMessage `json:"outcome,omitempty"`
}

// Response is the response Bundle of a batch or transaction. It keeps what
// each entry did (a write's result without its index entries, and without
// its resource unless the reply returns representations) and renders the
// Bundle as it is written, so that a large one is never held whole.
type Response struct {
	head    []byte // the Bundle up to its entries' array, opened
	reply   Reply
	answers []answer
}

// answer is one response entry: a write's result, or an entry rendered
// already as JSON (a read, a failed batch entry).
type answer struct {
	res      *Result
	rendered []byte
}

// WriteTo writes the response Bundle as JSON to dst.
func (r *Response) WriteTo(dst io.Writer) (int64, error) {
	cw := &countingWriter{w: dst}
	bw := bufio.NewWriterSize(cw, 32<<10)
	bw.Write(r.head)
	for i, a := range r.answers {
		if i > 0 {
			bw.WriteByte(',')
		}
		b := a.rendered
		if b == nil {
			var err error
			if b, err = json.Marshal(r.reply.entry(a.res)); err != nil {
				return cw.n, err
			}
		}
		bw.Write(b)
	}
	bw.WriteString("]}")
	err := bw.Flush()
	return cw.n, err
}

// countingWriter counts what it passes on, for WriteTo.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// Process carries out a batch or transaction for p and returns the response
// Bundle. A transaction is all or nothing: its failure is the error (an
// *EntryError naming the entry), and nothing of it is stored. Batch entries
// succeed or fail one by one, each failure an outcome in its entry.
func (w *Writer) Process(ctx context.Context, p *fhir.Principal, req *Request, rd Reader, reply Reply) (*Response, error) {
	out := make([]answer, len(req.Entries))
	bodies := reply.bodies()
	var reads []*Entry
	if req.Type == Transaction {
		var writes []*Entry
		for _, e := range req.Ordered() {
			switch {
			case e.Operation && e.Method == http.MethodPost:
				// An operation may change data outside this transaction's
				// one atomic write, so it is not allowed inside one.
				return nil, &EntryError{Index: e.Index, Err: fhir.NotSupported(
					"Operations ("+e.URL+") are not supported inside a transaction; send them in a batch",
					"事务中不支持操作（"+e.URL+"），请放在 batch 中发送").WithStatus(http.StatusBadRequest).
					WithExpression("Bundle.entry[" + strconv.Itoa(e.Index) + "].request.url")}
			case isRead(e):
				reads = append(reads, e)
			default:
				writes = append(writes, e)
			}
		}
		results, streamed, err := w.streamed(ctx, p, writes, bodies)
		if !streamed && err == nil {
			if results, err = w.writeAll(ctx, p, writes); err == nil {
				for i, r := range results {
					results[i] = keep(r, new(Result), new(store.Version), bodies)
				}
			}
		}
		if err != nil {
			return nil, err
		}
		for i, e := range writes {
			out[e.Index].res = results[i]
		}
	} else {
		for _, e := range req.Ordered() {
			if isRead(e) || e.Operation {
				reads = append(reads, e)
				continue
			}
			results, err := w.Write(ctx, p, []*Entry{e})
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				if w.opts.Auditor != nil {
					w.opts.Auditor.AuditFailure(ctx, p, []*Entry{e}, err)
				}
				b, err := json.Marshal(reply.failure(err))
				if err != nil {
					return nil, err
				}
				out[e.Index].rendered = b
				continue
			}
			out[e.Index].res = keep(results[0], new(Result), new(store.Version), bodies)
		}
	}
	for _, e := range reads {
		status, header, body := rd.ReadEntry(ctx, p, e)
		// Rendered now, so that a body that is not JSON fails here rather
		// than half-way through writing the response.
		b, err := json.Marshal(reply.read(status, header, body, e.Method))
		if err != nil {
			return nil, err
		}
		out[e.Index].rendered = b
	}
	typ := "batch-response"
	if req.Type == Transaction {
		typ = "transaction-response"
	}
	head, err := json.Marshal(responseBundle{ResourceType: "Bundle", ID: NewID(), Type: typ, Entry: []responseEntry{},
		Meta: responseMeta{LastUpdated: w.opts.Now().UTC().Format(time.RFC3339Nano)}})
	if err != nil {
		return nil, err
	}
	return &Response{head: head[:len(head)-len("]}")], reply: reply, answers: out}, nil
}

// isRead reports whether an entry only reads.
func isRead(e *Entry) bool { return e.Method == http.MethodGet || e.Method == http.MethodHead }

// bodies reports whether the response entries of writes hold the
// resources written.
func (r Reply) bodies() bool { return r.Return != "minimal" && r.Return != "OperationOutcome" }

// entry is the response entry of a write.
func (r Reply) entry(res *Result) responseEntry {
	e := responseEntry{Response: entryResponse{Status: statusText(res.Status)}}
	v := res.Version
	if v == nil {
		return e
	}
	e.Response.Etag = `W/"` + strconv.FormatInt(v.VersionID, 10) + `"`
	e.Response.LastModified = v.LastUpdated.UTC().Format(time.RFC3339Nano)
	if res.Status == http.StatusNoContent {
		return e
	}
	e.FullURL = r.Base + "/" + v.Type + "/" + v.ID
	e.Response.Location = v.Type + "/" + v.ID + "/_history/" + strconv.FormatInt(v.VersionID, 10)
	switch r.Return {
	case "minimal":
	case "OperationOutcome":
		e.Response.Outcome = fhir.OperationOutcome([]fhir.Issue{{Severity: "information", Code: fhir.IssueInformation, Message: res.Message}}, r.Lang)
	default:
		e.Resource = v.Resource
	}
	return e
}

// failure is the response entry of a batch entry that failed.
func (r Reply) failure(err error) responseEntry {
	fe := fhir.AsError(err)
	return responseEntry{Response: entryResponse{Status: statusText(fe.Status), Outcome: fhir.OperationOutcome(fe.Issues, r.Lang)}}
}

// read is the response entry of a GET or HEAD.
func (r Reply) read(status int, header http.Header, body []byte, method string) responseEntry {
	e := responseEntry{Response: entryResponse{Status: statusText(status), Etag: header.Get("ETag")}}
	if lm := header.Get("Last-Modified"); lm != "" {
		if t, err := http.ParseTime(lm); err == nil {
			e.Response.LastModified = t.UTC().Format(time.RFC3339)
		}
	}
	switch {
	case status >= 400:
		e.Response.Outcome = body
	case method != http.MethodHead && len(body) > 0:
		e.Resource = body
	}
	return e
}

func statusText(code int) string { return strconv.Itoa(code) + " " + http.StatusText(code) }

// exprType matches the resource type that starts an element path.
var exprType = regexp.MustCompile(`^[A-Z][A-Za-z]+(\.|$)`)

// Locate gives an entry's error its place in the Bundle: each issue's
// expression is rewritten under Bundle.entry[i].resource (or
// Bundle.entry[i] when it had none), and the message names the entry, so a
// failed transaction's one OperationOutcome says which entry failed.
func Locate(err error) *fhir.Error {
	var ee *EntryError
	if !errors.As(err, &ee) {
		return fhir.AsError(err)
	}
	inner := fhir.AsError(ee.Err)
	at := "Bundle.entry[" + strconv.Itoa(ee.Index) + "]"
	out := &fhir.Error{Status: inner.Status, Cause: inner.Cause}
	for _, is := range inner.Issues {
		is.Message.EN = at + ": " + is.Message.EN
		is.Message.ZH = at + "：" + is.Message.ZH
		var exprs []string
		for _, x := range is.Expression {
			switch {
			case strings.HasPrefix(x, "Bundle.entry["):
				exprs = append(exprs, x)
			case exprType.MatchString(x):
				exprs = append(exprs, at+".resource"+exprType.ReplaceAllString(x, "$1"))
			default:
				exprs = append(exprs, at+".resource."+x)
			}
		}
		if len(exprs) == 0 {
			exprs = []string{at}
		}
		is.Expression = exprs
		out.Issues = append(out.Issues, is)
	}
	return out
}
