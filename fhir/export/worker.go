package export

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/subset"
	"github.com/fmtbank/cmts/store"
)

// Run is the worker: until ctx ends it runs accepted jobs, takes up jobs
// whose worker stopped renewing its lease (a restart, a crash: the job
// starts again from the beginning, its partial files discarded) and
// removes expired jobs with their files. Several instances may run it on
// one store: a job is claimed by a compare-and-swap write of its record.
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
		if err := e.remove(ctx, j); err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
		if err := os.RemoveAll(e.jobDir(j.ID)); err != nil {
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
		j.State, j.Lease, j.Progress, j.Output, j.Deleted = stateRunning, e.opts.Now(), "", nil, nil
		if err := e.save(ctx, j); errors.Is(err, store.ErrConflict) {
			continue // claimed or cancelled meanwhile
		} else if err != nil {
			return err
		}
		if err := e.run(ctx, j); err != nil {
			if errors.Is(err, errLost) || ctx.Err() != nil {
				continue
			}
			e.opts.Logger.Error("export job failed", "job", j.ID, "err", err)
			j.State, j.Error, j.Expires = stateFailed, "internal error", e.opts.Now().Add(e.opts.TTL)
			if err := e.save(ctx, j); err != nil && !errors.Is(err, store.ErrConflict) {
				return err
			}
		}
	}
	return nil
}

// errLost: the job's record changed under the worker (cancelled, or
// another worker took it over): stop and leave it.
var errLost = errors.New("export: job lost")

// renew extends j's lease and records its progress, when due.
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

// run writes j's files and marks it done.
func (e *Exporter) run(ctx context.Context, j *job) error {
	dir := e.jobDir(j.ID)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	p := j.principal()
	// patients collects the Patients exported, for the compartments of a
	// Patient or Group export; members limits them to a Group's.
	var patients, members map[string]bool
	if j.Level == "Patient" || j.Level == "Group" {
		patients = map[string]bool{}
	}
	if j.Level == "Group" {
		var err error
		if members, err = e.members(ctx, p, j.Group); err != nil {
			return err
		}
	}
	for _, t := range e.types(j) {
		narrow, err := e.opts.Policy.Narrow(p, t)
		if err != nil {
			continue // the caller's scopes do not reach t
		}
		if narrow, err = e.filter(j, t, narrow); err != nil {
			return err
		}
		keep := len(j.Types) == 0 || slices.Contains(j.Types, t)
		n, err := e.exportType(ctx, j, p, t, narrow, patients, members, dir, keep)
		if err != nil {
			return err
		}
		if n > 0 && keep {
			j.Output = append(j.Output, file{Type: t, Name: t + ".ndjson", Count: n})
		}
	}
	if !j.Since.IsZero() {
		n, err := e.exportDeleted(ctx, j, p, dir)
		if err != nil {
			return err
		}
		if n > 0 {
			j.Deleted = append(j.Deleted, file{Type: "Bundle", Name: "deleted.ndjson", Count: n})
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

// ndjson is one output file being written.
type ndjson struct {
	f *os.File
	w *bufio.Writer
	n int
}

func create(path string) (*ndjson, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &ndjson{f: f, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

// line writes one resource as one line.
func (o *ndjson) line(body []byte) error {
	if bytes.ContainsAny(body, "\r\n") {
		var b bytes.Buffer
		if err := json.Compact(&b, body); err != nil {
			return err
		}
		body = b.Bytes()
	}
	if _, err := o.w.Write(body); err != nil {
		return err
	}
	o.n++
	return o.w.WriteByte('\n')
}

// close flushes the file, and removes it when it holds nothing.
func (o *ndjson) close() error {
	err := errors.Join(o.w.Flush(), o.f.Sync(), o.f.Close())
	if err == nil && o.n == 0 {
		err = os.Remove(o.f.Name())
	}
	return err
}

// exportType writes the resources of t that p sees, as they were at j's
// transaction time, a page at a time. With patients set (a Patient export)
// a Patient is recorded there and any other resource is kept only when it
// is in the compartment of one of them; with members set (a Group export)
// only those Patients are. keep false reads without writing.
func (e *Exporter) exportType(ctx context.Context, j *job, p *fhir.Principal, t string, narrow store.Expr,
	patients, members map[string]bool, dir string, keep bool) (int, error) {
	out, err := create(filepath.Join(dir, t+".ndjson"))
	if err != nil {
		return 0, err
	}
	defer out.f.Close()
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
				if members != nil && !members[v.ID] {
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
		if err != nil || body == nil {
			return err
		}
		if len(elements) > 0 {
			// After the view: _elements only takes away.
			if body, err = subset.Elements(t, body, elements); err != nil {
				return err
			}
		}
		return out.line(body)
	}
	var after *store.SearchCursor
	for {
		page, err := e.opts.Store.Search(ctx, store.Query{Access: access, Type: t, Filter: narrow, Count: e.opts.PageSize, After: after})
		if err != nil {
			return 0, err
		}
		for _, v := range page.Versions {
			if v.LastUpdated.After(j.TransactionTime) {
				// Changed since the job was accepted: export the version
				// current at that time, if any and if it matches.
				if v, err = e.asOf(ctx, access, v, j.TransactionTime); err != nil {
					return 0, err
				} else if v == nil || !e.matches(narrow, v) {
					continue
				}
			}
			if err := emit(v); err != nil {
				return 0, err
			}
		}
		if err := e.renew(ctx, j, fmt.Sprintf("%s: %d", t, out.n), false); err != nil {
			return 0, err
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
			return 0, err
		}
		for _, h := range page.Versions {
			if !h.Deleted || seen[h.ID] {
				continue
			}
			seen[h.ID] = true
			cur, err := e.opts.Store.Read(ctx, access, t, h.ID)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return 0, err
			}
			if err != nil || !cur.Deleted {
				continue // current again: the search met it
			}
			v, err := e.asOf(ctx, access, h, j.TransactionTime)
			if err != nil {
				return 0, err
			}
			if v != nil && e.matches(narrow, v) {
				if err := emit(v); err != nil {
					return 0, err
				}
			}
		}
		if page.Next == nil {
			break
		}
		q.After = page.Next
	}
	return out.n, out.close()
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
func (e *Exporter) exportDeleted(ctx context.Context, j *job, p *fhir.Principal, dir string) (int, error) {
	out, err := create(filepath.Join(dir, "deleted.ndjson"))
	if err != nil {
		return 0, err
	}
	defer out.f.Close()
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
