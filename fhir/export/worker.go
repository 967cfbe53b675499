package export

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/subset"
	"github.com/fmtbank/cmts/store"
)

// Run is the worker: until ctx ends it runs accepted jobs, takes up jobs
// whose worker stopped renewing its lease (a crash; a worker that is
// stopped releases its lease at once) and removes expired jobs with their
// files. A job taken up resumes after the last type whose files were
// complete; the type it was writing starts again, its partial file
// replaced. Several instances may run it on one store: a job is claimed by
// a compare-and-swap write of its record.
func (e *Exporter) Run(ctx context.Context) error {
	t := time.NewTicker(e.opts.Poll)
	defer t.Stop()
	for {
		if err := e.Step(ctx); err != nil && ctx.Err() == nil {
			e.opts.Logger.Error("export worker", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-e.wake:
		}
	}
}

// Step removes expired jobs and runs every job waiting to run, once.
func (e *Exporter) Step(ctx context.Context) error {
	now := e.opts.Now()
	finished, err := e.jobs(ctx, 1000, stateDone, stateFailed)
	if err != nil {
		return err
	}
	for _, j := range finished {
		if now.Before(j.Expires) {
			continue
		}
		// The files first: a record left by a failed removal is met
		// again next time, files without a record would never be.
		if err := e.opts.Files.Remove(ctx, j.ID); err != nil {
			return err
		}
		if err := e.remove(ctx, j); err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	todo, err := e.jobs(ctx, 100, stateAccepted, stateRunning)
	if err != nil {
		return err
	}
	for _, j := range todo {
		if j.State == stateRunning && e.opts.Now().Sub(j.Lease) < e.opts.Stale {
			continue // another worker has it
		}
		if j.State == stateRunning {
			e.opts.Logger.Info("export job taken up", "job", j.ID, "finished_types", len(j.Finished))
		}
		j.State, j.Lease, j.Progress = stateRunning, e.opts.Now(), ""
		if err := e.save(ctx, j); errors.Is(err, store.ErrConflict) {
			continue // claimed or cancelled meanwhile
		} else if err != nil {
			return err
		}
		err := e.run(ctx, j)
		switch {
		case err == nil:
		case ctx.Err() != nil:
			// Stopped (a shutdown): let the next worker take the job
			// up at once rather than when the lease runs out.
			e.release(ctx, j)
			return nil
		case errors.Is(err, errLost):
			// Cancelled under us: what was written after the cancel
			// removed the files is removed now.
			if _, lerr := e.load(ctx, j.ID); errors.Is(lerr, errNoJob) {
				if err := e.opts.Files.Remove(ctx, j.ID); err != nil {
					return err
				}
			}
		default:
			e.opts.Logger.Error("export job failed", "job", j.ID, "err", err)
			// A request the job can no longer answer (its Group deleted)
			// says why; anything else is not the client's to read.
			msg := "internal error"
			if partial(err) {
				msg = err.Error()
			}
			j.State, j.Error, j.Expires = stateFailed, msg, e.opts.Now().Add(e.opts.TTL)
			if err := e.save(ctx, j); err != nil && !errors.Is(err, store.ErrConflict) {
				return err
			}
		}
	}
	return nil
}

// release gives up j's lease (its worker is stopping), keeping what it
// finished.
func (e *Exporter) release(ctx context.Context, j *job) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	j.Lease = time.Time{}
	if err := e.save(rctx, j); err != nil && !errors.Is(err, store.ErrConflict) {
		e.opts.Logger.Warn("export job not released", "job", j.ID, "err", err)
	}
}

// errLost: the job's record changed under the worker (cancelled, or
// another worker took it over): stop and leave it.
var errLost = errors.New("export: job lost")

// renew extends j's lease and records its progress, when due (always when
// force: a checkpoint).
func (e *Exporter) renew(ctx context.Context, j *job, progress string, force bool) error {
	if !force && e.opts.Now().Sub(j.Lease) < e.opts.Stale/4 {
		return nil
	}
	j.Lease, j.Progress = e.opts.Now(), progress
	err := e.save(ctx, j)
	if errors.Is(err, store.ErrConflict) {
		return errLost
	}
	return err
}

// types are the resource types j covers, a Patient first (a Patient
// export finds the rest through the patients).
func (e *Exporter) types(j *job) []string {
	ts := j.Types
	if len(ts) == 0 {
		ts = e.opts.Types
	}
	if j.Level == "Patient" || j.Level == "Group" {
		ts = slices.DeleteFunc(slices.Clone(ts), func(t string) bool {
			return t != "Patient" && len(e.opts.Compartment(t)) == 0
		})
		if i := slices.Index(ts, "Patient"); i > 0 {
			ts = slices.Concat([]string{"Patient"}, slices.Delete(ts, i, i+1))
		} else if i < 0 {
			// The patients decide what the rest holds, even when the
			// export does not include them.
			ts = slices.Concat([]string{"Patient"}, ts)
		}
	}
	return ts
}

// File names: one output and at most one error file per type.
func outputName(t string) string { return t + ".ndjson" }
func errorName(t string) string  { return "OperationOutcome-" + t + ".ndjson" }

const deletedName = "deleted.ndjson"

// run writes j's files and marks it done, recording each type in
// j.Finished as its files are complete.
func (e *Exporter) run(ctx context.Context, j *job) error {
	p := j.principal()
	// patients collects the Patients exported, for the compartments of a
	// Patient or Group export; c limits them to a Group's.
	var patients map[string]bool
	var c *cohort
	if j.Level == "Patient" || j.Level == "Group" {
		patients = map[string]bool{}
	}
	if j.Level == "Group" {
		var err error
		if c, err = e.cohort(ctx, p, j.Group); err != nil {
			return err
		}
	}
	for _, t := range e.types(j) {
		done := slices.Contains(j.Finished, t)
		if done && (patients == nil || t != "Patient") {
			continue
		}
		narrow, err := e.opts.Policy.Narrow(p, t)
		if err != nil {
			continue // the caller's scopes do not reach t
		}
		// A finished Patient file is read again (not written) for the
		// patients whose compartments the other types follow.
		keep := !done && (len(j.Types) == 0 || slices.Contains(j.Types, t))
		out, errs, err := e.exportType(ctx, j, p, t, narrow, patients, c, keep)
		if err != nil {
			return err
		}
		if done {
			continue
		}
		if out > 0 {
			j.Output = append(j.Output, file{Type: t, Name: outputName(t), Count: out})
		}
		if errs > 0 {
			j.Errors = append(j.Errors, file{Type: "OperationOutcome", Name: errorName(t), Count: errs})
		}
		j.Finished = append(j.Finished, t)
		// A checkpoint after each file: saving after every type (most of
		// the R4 types have nothing) would cost a write per type.
		if err := e.renew(ctx, j, fmt.Sprintf("%s: %d", t, out), out > 0 || errs > 0); err != nil {
			return err
		}
	}
	if !j.Since.IsZero() {
		n, err := e.exportDeleted(ctx, j, p)
		if err != nil {
			return err
		}
		if n > 0 {
			j.Deleted = append(j.Deleted, file{Type: "Bundle", Name: deletedName, Count: n})
		}
	}
	j.State, j.Expires, j.Progress = stateDone, e.opts.Now().Add(e.opts.TTL), ""
	if err := e.save(ctx, j); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return errLost
		}
		return err
	}
	return nil
}

// ndjson is one file being written; it is created with its first line, so
// that a type with nothing to export leaves no file.
type ndjson struct {
	ctx       context.Context
	files     Files
	job, name string
	f         io.WriteCloser
	w         *bufio.Writer
	n         int
}

func (e *Exporter) ndjson(ctx context.Context, j *job, name string) *ndjson {
	return &ndjson{ctx: ctx, files: e.opts.Files, job: j.ID, name: name}
}

// line writes body, JSON on one line, as one line.
func (o *ndjson) line(body []byte) error {
	if o.f == nil {
		f, err := o.files.Create(o.ctx, o.job, o.name)
		if err != nil {
			return err
		}
		o.f, o.w = f, bufio.NewWriterSize(f, 64<<10)
	}
	if _, err := o.w.Write(body); err != nil {
		return err
	}
	o.n++
	return o.w.WriteByte('\n')
}

// oneLine is body, JSON, on one line.
func oneLine(body []byte) ([]byte, error) {
	if !bytes.ContainsAny(body, "\r\n") {
		return body, nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, body); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// close completes the file (nothing when it has no line).
func (o *ndjson) close() error {
	if o.f == nil {
		return nil
	}
	err := errors.Join(o.w.Flush(), o.f.Close())
	o.f = nil
	return err
}

// partial reports whether err is a failure of one type or resource (the
// export goes on, the error written to an error file) rather than of the
// job (the store down, the worker stopping: the job stops).
func partial(err error) bool {
	if errors.Is(err, store.ErrInvalidQuery) {
		return true
	}
	var fe *fhir.Error
	return errors.As(err, &fe) && fe.Status >= 400 && fe.Status < 500
}

// outcome is one line of an error file: what failed, in both languages,
// with the FHIR issues of err when it has them (never its text otherwise,
// which may quote data).
func outcome(en, zh string, err error) []byte {
	issues := []fhir.Issue{{Code: fhir.IssueException, Message: fhir.Message{EN: en, ZH: zh}}}
	var fe *fhir.Error
	if errors.As(err, &fe) {
		for _, is := range fe.Issues {
			is.Severity = "error"
			issues = append(issues, is)
		}
	}
	return fhir.OperationOutcome(issues, fhir.English)
}

// exportType writes the resources of t that p sees, as they were at j's
// transaction time, a page at a time, and answers how many it wrote and
// how many errors it recorded. With patients set (a Patient export) a
// Patient is recorded there and any other resource is kept only when it
// is in the compartment of one of them; with c set (a Group export) only
// the group's Patients are. keep false reads without writing.
//
// A resource that cannot be rendered is left out and an OperationOutcome
// written in its place to the type's error file; so is the type itself
// when its search fails (a _typeFilter the store cannot evaluate), and
// then none of its resources is listed.
func (e *Exporter) exportType(ctx context.Context, j *job, p *fhir.Principal, t string, narrow store.Expr,
	patients map[string]bool, c *cohort, keep bool) (int, int, error) {
	out, errs := e.ndjson(ctx, j, outputName(t)), e.ndjson(ctx, j, errorName(t))
	defer out.close()
	defer errs.close()
	// failed ends the type on a partial failure err, recorded in the
	// error file.
	failed := func(err error) (int, int, error) {
		e.opts.Logger.Warn("export type failed", "job", j.ID, "type", t, "err", err)
		if keep {
			if err := errs.line(outcome("The resources of type "+t+" could not be exported", "无法导出 "+t+" 类型的资源", err)); err != nil {
				return 0, 0, err
			}
		}
		return 0, errs.n, errs.close()
	}
	filter, err := e.filter(j, t, narrow)
	if err != nil {
		if partial(err) {
			return failed(err)
		}
		return 0, 0, err
	}
	if c != nil && t == "Patient" && c.filter != nil {
		if filter == nil {
			filter = c.filter
		} else {
			filter = store.And{filter, c.filter}
		}
	}
	access := e.opts.Policy.Access(p)
	elements := j.elements(t)
	// emit writes v, a version current at the transaction time, if the
	// export holds it.
	emit := func(v *store.Version) error {
		if !j.Since.IsZero() && v.LastUpdated.Before(j.Since) || !e.opts.Policy.Readable(p, v) {
			return nil
		}
		if patients != nil {
			if t == "Patient" {
				if c != nil && c.members != nil && !c.members[v.ID] {
					return nil
				}
				patients[v.ID] = true
			} else if !e.inCompartment(v, patients) {
				return nil
			}
		}
		if !keep {
			return nil
		}
		body, err := e.opts.Policy.View(p, v)
		if err == nil && body != nil && len(elements) > 0 {
			// After the view: _elements only takes away.
			body, err = subset.Elements(t, body, elements)
		}
		if err == nil && body != nil {
			body, err = oneLine(body)
		}
		switch {
		case err != nil:
			e.opts.Logger.Warn("export resource failed", "job", j.ID, "type", t, "id", v.ID, "err", err)
			return errs.line(outcome(t+"/"+v.ID+" could not be exported", "无法导出 "+t+"/"+v.ID, err))
		case body == nil:
			return nil
		}
		return out.line(body)
	}
	var after *store.SearchCursor
	for {
		page, err := e.opts.Store.Search(ctx, store.Query{Access: access, Type: t, Filter: filter, Count: e.opts.PageSize, After: after})
		if err != nil {
			if partial(err) {
				return failed(err)
			}
			return 0, 0, err
		}
		for _, v := range page.Versions {
			if v.LastUpdated.After(j.TransactionTime) {
				// Changed since the job was accepted: export the version
				// current at that time, if any and if it matches.
				if v, err = e.asOf(ctx, access, v, j.TransactionTime); err != nil {
					return 0, 0, err
				} else if v == nil || !e.matches(filter, v) {
					continue
				}
			}
			if err := emit(v); err != nil {
				return 0, 0, err
			}
		}
		if err := e.renew(ctx, j, fmt.Sprintf("%s: %d", t, out.n), false); err != nil {
			return 0, 0, err
		}
		if !page.More || len(page.Versions) == 0 {
			break
		}
		last := page.Versions[len(page.Versions)-1]
		after = &store.SearchCursor{Type: last.Type, ID: last.ID}
	}
	// Resources deleted after the transaction time are not found by the
	// search, but were there at that time.
	seen := map[string]bool{}
	q := store.HistoryQuery{Access: access, Type: t, Since: j.TransactionTime.Add(time.Microsecond), Count: e.opts.PageSize}
	for {
		page, err := e.opts.Store.History(ctx, q)
		if err != nil {
			return 0, 0, err
		}
		for _, h := range page.Versions {
			if !h.Deleted || seen[h.ID] {
				continue
			}
			seen[h.ID] = true
			cur, err := e.opts.Store.Read(ctx, access, t, h.ID)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return 0, 0, err
			}
			if err != nil || !cur.Deleted {
				continue // current again: the search met it
			}
			v, err := e.asOf(ctx, access, h, j.TransactionTime)
			if err != nil {
				return 0, 0, err
			}
			if v != nil && e.matches(filter, v) {
				if err := emit(v); err != nil {
					return 0, 0, err
				}
			}
		}
		if page.Next == nil {
			break
		}
		q.After = page.Next
	}
	return out.n, errs.n, errors.Join(out.close(), errs.close())
}

// matches reports whether v (a past version, which the store's search did
// not evaluate) satisfies filter; a filter that needs other resources
// (chains) does not match, so that an export never holds more than it may.
func (e *Exporter) matches(filter store.Expr, v *store.Version) bool {
	if filter == nil {
		return true
	}
	idx, err := e.opts.Indexer.Entries(v.Type, v.Resource)
	if err != nil {
		return false
	}
	w := *v
	w.Index = idx
	ok, err := store.Match(filter, &w, nil)
	return err == nil && ok
}

// asOf is the version of v's resource current at tx (nil: none then, or
// deleted).
func (e *Exporter) asOf(ctx context.Context, access store.Access, v *store.Version, tx time.Time) (*store.Version, error) {
	q := store.HistoryQuery{Access: access, Type: v.Type, ID: v.ID, Count: 50}
	for {
		page, err := e.opts.Store.History(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, h := range page.Versions {
			if !h.LastUpdated.After(tx) {
				if h.Deleted {
					return nil, nil
				}
				return h, nil
			}
		}
		if page.Next == nil {
			return nil, nil
		}
		q.After = page.Next
	}
}

// inCompartment reports whether v refers, through one of its type's
// patient compartment parameters, to one of patients.
func (e *Exporter) inCompartment(v *store.Version, patients map[string]bool) bool {
	for _, param := range e.opts.Compartment(v.Type) {
		refs, err := e.opts.Indexer.References(v.Type, v.Resource, param)
		if err != nil {
			continue
		}
		for _, r := range refs {
			if r.Kind == store.KindReference && r.System == "Patient" && patients[r.Code] {
				return true
			}
		}
	}
	return false
}

// exportDeleted writes, for a _since export, one transaction Bundle line
// with a DELETE entry for each resource of j's types deleted between
// _since and the transaction time that p could have seen.
func (e *Exporter) exportDeleted(ctx context.Context, j *job, p *fhir.Principal) (int, error) {
	out := e.ndjson(ctx, j, deletedName)
	defer out.close()
	types := e.types(j)
	// seen holds the resources met so far: history runs newest first, so
	// the first version met at or before tx is the state at tx.
	seen := map[string]bool{}
	q := store.HistoryQuery{Access: e.opts.Policy.Access(p), Since: j.Since, Count: e.opts.PageSize}
	for {
		page, err := e.opts.Store.History(ctx, q)
		if err != nil {
			return 0, err
		}
		for _, v := range page.Versions {
			key := v.Type + "/" + v.ID
			if v.LastUpdated.After(j.TransactionTime) || seen[key] {
				continue
			}
			seen[key] = true
			if !v.Deleted || !slices.Contains(types, v.Type) || !e.opts.Policy.Readable(p, v) {
				continue
			}
			line, err := marshal(map[string]any{"resourceType": "Bundle", "type": "transaction",
				"entry": []any{map[string]any{"request": map[string]any{"method": "DELETE", "url": key}}}})
			if err != nil {
				return 0, err
			}
			if err := out.line(line); err != nil {
				return 0, err
			}
		}
		if err := e.renew(ctx, j, fmt.Sprintf("deleted: %d", out.n), false); err != nil {
			return 0, err
		}
		if page.Next == nil {
			break
		}
		q.After = page.Next
	}
	return out.n, out.close()
}

func marshal(v any) ([]byte, error) { return json.Marshal(v) }
