package export

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/store"
)

// Job records are Basic resources of the tenant JobTenant, reach owner: no
// caller's Access sees them (not even a regulator's, which sees every other
// tenant but owner-reach resources), while every server instance on the
// same store finds them. The job itself is JSON in one extension; its
// state is an identifier, so that a search finds the unfinished jobs.
const (
	// JobTenant owns every export job record.
	JobTenant = "cmts-export-jobs"
	jobSystem = "http://fmtbank.org/fhir/CodeSystem/cmts-job"
	stateSID  = "http://fmtbank.org/fhir/sid/export-job-state"
	jobExt    = "http://fmtbank.org/fhir/StructureDefinition/export-job"
)

// Job states.
const (
	stateAccepted = "accepted"
	stateRunning  = "running"
	stateDone     = "done"
	stateFailed   = "failed"
)

// file is one output file of a job.
type file struct {
	Type  string `json:"type"`
	Name  string `json:"name"`
	Count int    `json:"count"`
}

// job is what a job record holds.
type job struct {
	ID string `json:"-"`
	// version is the record's VersionID, for compare-and-swap updates.
	version int64
	// Owner is who started the job (roles and scopes included): the job
	// runs as them, and only they may see it.
	Owner fhir.Principal `json:"owner"`
	Level string         `json:"level"`
	Group string         `json:"group,omitempty"`
	Types []string       `json:"types,omitempty"`
	Since time.Time      `json:"since,omitzero"`
	// TypeFilters are the _typeFilter queries by type (query strings).
	TypeFilters map[string][]string `json:"typeFilters,omitempty"`
	// Elements are the _elements names ("name" for every type,
	// "Patient.name" for one).
	Elements []string `json:"elements,omitempty"`
	Request  string   `json:"request"`
	State    string   `json:"state"`
	// TransactionTime is when the job was accepted: the export shows the
	// store as it was then.
	TransactionTime time.Time `json:"transactionTime"`
	// Lease is when the worker running the job last said it was alive.
	Lease    time.Time `json:"lease,omitzero"`
	Progress string    `json:"progress,omitempty"`
	Output   []file    `json:"output,omitempty"`
	// Errors are the NDJSON OperationOutcome files of partial failures.
	Errors  []file `json:"errors,omitempty"`
	Deleted []file `json:"deleted,omitempty"`
	// Finished are the types whose files are complete (and in Output and
	// Errors): a worker taking up the job after a restart skips them.
	Finished []string  `json:"finished,omitempty"`
	Error    string    `json:"error,omitempty"`
	Expires  time.Time `json:"expires,omitzero"`
}

// owns reports whether p is the principal that started j.
func (j *job) owns(p *fhir.Principal) bool {
	return p != nil && p.Tenant == j.Owner.Tenant && p.Issuer == j.Owner.Issuer && p.Subject == j.Owner.Subject
}

// principal is the owner as the access policy reads it.
func (j *job) principal() *fhir.Principal {
	p := j.Owner
	p.Grants = fhir.ParseScopes(p.Scopes)
	return &p
}

var jobAccess = store.Tenant(JobTenant)

// record is the job as a Basic resource version after prev.
func (e *Exporter) record(j *job, now time.Time) (store.Write, error) {
	owner := j.Owner
	owner.Grants = nil
	jj := *j
	jj.Owner = owner
	text, err := json.Marshal(&jj)
	if err != nil {
		return store.Write{}, err
	}
	version := j.version + 1
	res := map[string]any{
		"resourceType": "Basic", "id": j.ID,
		"meta":       map[string]any{"versionId": fmt.Sprint(version), "lastUpdated": now.UTC().Format(time.RFC3339Nano)},
		"code":       map[string]any{"coding": []any{map[string]any{"system": jobSystem, "code": "export"}}},
		"identifier": []any{map[string]any{"system": stateSID, "value": j.State}},
		"extension":  []any{map[string]any{"url": jobExt, "valueString": string(text)}},
	}
	body, err := json.Marshal(res)
	if err != nil {
		return store.Write{}, err
	}
	idx, err := e.opts.Indexer.Entries("Basic", body)
	if err != nil {
		return store.Write{}, err
	}
	return store.Write{PrevVersion: j.version, Version: store.Version{Tenant: JobTenant, Type: "Basic", ID: j.ID,
		VersionID: version, LastUpdated: now.UTC(), Resource: body, Index: idx, Method: "PUT", Reach: store.ReachOwner}}, nil
}

// save stores j as its next version (compare-and-swap on j.version).
// Errors: store.ErrConflict when the record changed (another worker, a
// cancel).
func (e *Exporter) save(ctx context.Context, j *job) error {
	w, err := e.record(j, e.opts.Now())
	if err != nil {
		return err
	}
	if err := e.opts.Store.Put(ctx, w); err != nil {
		return err
	}
	j.version = w.Version.VersionID
	return nil
}

// remove tombstones j's record (compare-and-swap on j.version).
func (e *Exporter) remove(ctx context.Context, j *job) error {
	return e.opts.Store.Put(ctx, store.Write{PrevVersion: j.version, Version: store.Version{Tenant: JobTenant, Type: "Basic",
		ID: j.ID, VersionID: j.version + 1, LastUpdated: e.opts.Now().UTC(), Deleted: true, Method: "DELETE", Reach: store.ReachOwner}})
}

// errNoJob: no such job (or deleted).
var errNoJob = errors.New("export: no such job")

// load reads job id.
func (e *Exporter) load(ctx context.Context, id string) (*job, error) {
	v, err := e.opts.Store.Read(ctx, jobAccess, "Basic", id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, errNoJob
	case err != nil:
		return nil, err
	case v.Deleted:
		return nil, errNoJob
	}
	return decode(v)
}

func decode(v *store.Version) (*job, error) {
	var res struct {
		Extension []struct {
			URL         string `json:"url"`
			ValueString string `json:"valueString"`
		} `json:"extension"`
	}
	if err := json.Unmarshal(v.Resource, &res); err != nil {
		return nil, err
	}
	for _, x := range res.Extension {
		if x.URL == jobExt {
			var j job
			if err := json.Unmarshal([]byte(x.ValueString), &j); err != nil {
				return nil, err
			}
			j.ID, j.version = v.ID, v.VersionID
			return &j, nil
		}
	}
	return nil, fmt.Errorf("export: Basic/%s is not a job record", v.ID)
}

// jobs lists the job records in one of the states (at most limit).
func (e *Exporter) jobs(ctx context.Context, limit int, states ...string) ([]*job, error) {
	sys := stateSID
	var or store.Or
	for _, s := range states {
		or = append(or, store.Token{Param: "identifier", System: &sys, Code: s})
	}
	var out []*job
	var after *store.SearchCursor
	for {
		page, err := e.opts.Store.Search(ctx, store.Query{Access: jobAccess, Type: "Basic", Filter: or, Count: 100, After: after})
		if err != nil {
			return nil, err
		}
		for _, v := range page.Versions {
			j, err := decode(v)
			if err != nil {
				return nil, err
			}
			out = append(out, j)
			if len(out) >= limit {
				return out, nil
			}
		}
		if !page.More || len(page.Versions) == 0 {
			return out, nil
		}
		last := page.Versions[len(page.Versions)-1]
		after = &store.SearchCursor{Type: last.Type, ID: last.ID}
	}
}

// elements are j's _elements names that apply to typ (nil: all elements).
func (j *job) elements(typ string) []string {
	var out []string
	for _, el := range j.Elements {
		before, _, dotted := strings.Cut(el, ".")
		if !dotted || before == typ {
			out = append(out, el)
		}
	}
	return out
}
