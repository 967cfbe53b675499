// Package exporttest is the Bulk Data $export suite every store backend
// runs with its own place for the files: the kick-off, status, manifest
// and file rules as Inferno's Bulk Data test kit checks them, and the ones
// it leaves out (_type, _typeFilter, _since with deleted, 429, tenant and
// role scoping, de-identification for the regulator, error files, Groups
// defined by characteristics, a job taken up after a crash or a stop and
// resumed without duplicates, expired jobs removed with their files).
package exporttest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fmtbank/cmts/auth/policy"
	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/export"
	"github.com/fmtbank/cmts/fhir/ops/opstest"
	"github.com/fmtbank/cmts/fhir/rest"
	"github.com/fmtbank/cmts/fhir/rest/resttest"
	"github.com/fmtbank/cmts/store"
)

// NewStore opens a fresh, empty store for one test.
type NewStore func(t testing.TB) store.Store

// NewFiles is the place of the export files that goes with st (the one
// the server would use with that store).
type NewFiles func(t testing.TB, st store.Store) export.Files

// Run runs the suite on stores made by newStore, with the files where
// newFiles keeps them.
func Run(t *testing.T, newStore NewStore, newFiles NewFiles) {
	for _, tc := range []struct {
		name string
		run  func(*testing.T, backend)
	}{
		{"KickoffRefused", testKickoffRefused},
		{"SystemExport", testSystemExport},
		{"Regulator", testRegulator},
		{"Parameters", testParameters},
		{"Since", testSince},
		{"TypeFilter", testTypeFilter},
		{"TransactionTime", testTransactionTime},
		{"PatientExport", testPatientExport},
		{"GroupExport", testGroupExport},
		{"Cancel", testCancel},
		{"OtherPrincipal", testOtherPrincipal},
		{"TooMany", testTooMany},
		{"Restart", testRestart},
		{"CrashMidExport", testCrashMidExport},
		{"StopMidExport", testStopMidExport},
		{"ErrorFiles", testErrorFiles},
		{"GroupCharacteristics", testGroupCharacteristics},
		{"GroupGone", testGroupGone},
		{"Expiry", testExpiry},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, backend{newStore, newFiles})
		})
	}
}

// tokens authenticates a request by its bearer token; a request without a
// known token is refused (401), as a deployment with --trust refuses it.
type tokens map[string]*fhir.Principal

func (ts tokens) Authenticate(r *http.Request) (*fhir.Principal, error) {
	if p, ok := ts[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]; ok {
		return p, nil
	}
	return nil, fhir.Unauthorized("A valid bearer token is required", "需要有效的访问令牌")
}

func principal(tenant, subject string, kind fhir.TenantKind, role fhir.Role, scopes ...string) *fhir.Principal {
	if len(scopes) == 0 {
		scopes = []string{"user/*.cruds"}
	}
	return &fhir.Principal{Tenant: tenant, TenantKind: kind, Subject: subject, Issuer: "https://idp.example",
		Roles: []fhir.Role{role}, Scopes: scopes, Grants: fhir.ParseScopes(scopes)}
}

var principals = tokens{
	"h1":    principal("h1", "alice", fhir.TenantHospital, fhir.RoleClinician),
	"h1bob": principal("h1", "bob", fhir.TenantHospital, fhir.RoleClinician),
	"h2":    principal("h2", "system-h2", fhir.TenantHospital, fhir.RoleSystem, "system/*.read"),
	"gov":   principal("gov", "nhc-pull", fhir.TenantAuthority, fhir.RoleRegulator, "system/*.read"),
	"b1":    principal("b1", "carol", fhir.TenantBank, fhir.RoleBankStaff),
}

// backend is the store and files under test.
type backend struct {
	newStore NewStore
	newFiles NewFiles
}

// env is a server over the suite's cohort (opstest.Cohort) with an
// exporter whose worker runs unless asked otherwise.
type env struct {
	t     *testing.T
	c     *resttest.Client
	r     *opstest.Registry
	ex    *export.Exporter
	files export.Files
}

type setup struct {
	noWorker bool
	maxJobs  int
	// st and files: another env's (a second server on the same store).
	st    store.Store
	files export.Files
	// wrap, when set, is the store as the exporter sees it.
	wrap func(store.Store) store.Store
	// pol, idx, when set, wrap the policy and indexer the exporter uses.
	pol      func(fhir.Policy) fhir.Policy
	idx      func(export.Indexer) export.Indexer
	pageSize int
	now      func() time.Time
}

func newEnv(t *testing.T, b backend, s setup) *env {
	t.Helper()
	st := s.st
	if st == nil {
		st = b.newStore(t)
	}
	var r *opstest.Registry
	if s.st == nil {
		r = opstest.Cohort(t, st)
	} else {
		r = opstest.NewRegistry(t, st)
	}
	codec, err := fhir.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	files := s.files
	if files == nil {
		files = b.newFiles(t, st)
	}
	exStore, exPol, exIdx := st, fhir.Policy(r.Pol), export.Indexer(r.Engine)
	if s.wrap != nil {
		exStore = s.wrap(st)
	}
	if s.pol != nil {
		exPol = s.pol(exPol)
	}
	if s.idx != nil {
		exIdx = s.idx(exIdx)
	}
	ex, err := export.New(export.Options{Store: exStore, Policy: exPol, Indexer: exIdx, Types: codec.ResourceTypes(),
		Compartment: policy.PatientCompartment, Files: files, MaxJobs: s.maxJobs, Poll: 100 * time.Millisecond,
		PageSize: s.pageSize, Now: s.now})
	if err != nil {
		t.Fatal(err)
	}
	if !s.noWorker {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = ex.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	c := resttest.Serve(t, st, func(o *rest.Options) {
		o.Auth = principals
		o.Policy = r.Pol
		o.Indexer = r.Engine
		o.Export = ex
	})
	return &env{t: t, c: c, r: r, ex: ex, files: files}
}

var kickoffHeaders = []string{"Accept", "application/fhir+json", "Prefer", "respond-async"}

// kickoff starts an export as token and answers the status URL.
func (e *env) kickoff(token, path string, header ...string) string {
	e.t.Helper()
	h := append(slices.Clone(kickoffHeaders), "Authorization", "Bearer "+token)
	res := e.c.Do(http.MethodGet, path, nil, append(h, header...)...)
	if res.Status != http.StatusAccepted {
		e.t.Fatalf("GET %s: want 202, got %d %s", path, res.Status, res.Body)
	}
	loc := res.Header.Get("Content-Location")
	if !strings.HasPrefix(loc, e.c.Base+"/") {
		e.t.Fatalf("GET %s: Content-Location %q is not an absolute URL below the base", path, loc)
	}
	return loc
}

// poll polls the status URL as token, honouring Retry-After, until the
// manifest comes (or fails the test after a while).
func (e *env) poll(token, status string) map[string]any {
	e.t.Helper()
	// A bound against a job that never ends, not a speed check: a loaded
	// CI machine may take minutes where a quiet one takes a second.
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		res := e.c.Do(http.MethodGet, status, nil, "Authorization", "Bearer "+token)
		switch res.Status {
		case http.StatusOK:
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				e.t.Errorf("manifest: Content-Type %q, want application/json", ct)
			}
			if _, err := http.ParseTime(res.Header.Get("Expires")); err != nil {
				e.t.Errorf("manifest: Expires %q: %v", res.Header.Get("Expires"), err)
			}
			return res.JSON(e.t)
		case http.StatusAccepted:
			if res.Header.Get("X-Progress") == "" {
				e.t.Errorf("status 202 without X-Progress")
			}
			secs, err := strconv.Atoi(res.Header.Get("Retry-After"))
			if err != nil || secs < 1 {
				e.t.Fatalf("status 202: Retry-After %q is not a positive number of seconds", res.Header.Get("Retry-After"))
			}
			time.Sleep(time.Duration(secs) * time.Second)
		default:
			e.t.Fatalf("status: %d %s", res.Status, res.Body)
		}
	}
	e.t.Fatal("the export did not complete in ten minutes")
	return nil
}

// download fetches every output (or deleted) file of the manifest as
// token: resources by type, checking the NDJSON rules on the way.
func (e *env) download(token string, m map[string]any, key string) map[string][]map[string]any {
	e.t.Helper()
	out := map[string][]map[string]any{}
	items, _ := m[key].([]any)
	for _, it := range items {
		o := it.(map[string]any)
		typ, u := o["type"].(string), o["url"].(string)
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			e.t.Errorf("%s url %q is not absolute", key, u)
		}
		if _, dup := out[typ]; dup && key == "output" {
			e.t.Errorf("two output files of %s", typ)
		}
		res := e.c.Do(http.MethodGet, u, nil, "Authorization", "Bearer "+token, "Accept", "application/fhir+ndjson")
		if res.Status != http.StatusOK {
			e.t.Fatalf("GET %s: %d %s", u, res.Status, res.Body)
		}
		if ct := res.Header.Get("Content-Type"); ct != "application/fhir+ndjson" {
			e.t.Errorf("GET %s: Content-Type %q, want application/fhir+ndjson", u, ct)
		}
		sc := bufio.NewScanner(bytes.NewReader(res.Body))
		sc.Buffer(nil, 16<<20)
		n := 0
		for sc.Scan() {
			var r map[string]any
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				e.t.Fatalf("%s line %d is not JSON: %v", u, n+1, err)
			}
			if r["resourceType"] != typ {
				e.t.Errorf("%s: a %v in the file of %s", u, r["resourceType"], typ)
			}
			out[typ] = append(out[typ], r)
			n++
		}
		if c, _ := o["count"].(float64); int(c) != n {
			e.t.Errorf("%s: count %v, file has %d lines", u, o["count"], n)
		}
	}
	return out
}

func ids(rs []map[string]any) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r["id"].(string))
	}
	slices.Sort(out)
	return out
}

func types(files map[string][]map[string]any) []string {
	var out []string
	for t := range files {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

func testKickoffRefused(t *testing.T, b backend) {
	e := newEnv(t, b, setup{})
	// The CapabilityStatement says the server does Bulk Data export.
	cs := e.c.Do(http.MethodGet, "/metadata", nil)
	if !bytes.Contains(cs.Body, []byte(`"instantiates":["http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"]`)) ||
		!bytes.Contains(cs.Body, []byte(`"definition":"http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"`)) {
		t.Errorf("the CapabilityStatement does not name the Bulk Data export operation")
	}
	for _, tc := range []struct {
		name   string
		header []string
		want   int
	}{
		{"no token", kickoffHeaders, http.StatusUnauthorized},
		{"bad token", append(slices.Clone(kickoffHeaders), "Authorization", "Bearer nobody"), http.StatusUnauthorized},
		{"no Prefer", []string{"Authorization", "Bearer h1", "Accept", "application/fhir+json"}, http.StatusBadRequest},
	} {
		res := e.c.Do(http.MethodGet, "/$export", nil, tc.header...)
		if res.Status != tc.want {
			t.Errorf("%s: want %d, got %d %s", tc.name, tc.want, res.Status, res.Body)
		}
		if b := res.JSON(t); b["resourceType"] != "OperationOutcome" {
			t.Errorf("%s: want an OperationOutcome, got %s", tc.name, res.Body)
		}
	}
}

// testSystemExport: a hospital's system export holds its own tenant's
// resources and the shared lots, nothing of other tenants; the manifest
// has the five keys.
func testSystemExport(t *testing.T, b backend) {
	e := newEnv(t, b, setup{})
	status := e.kickoff("h2", "/$export")
	m := e.poll("h2", status)
	for _, k := range []string{"transactionTime", "request", "requiresAccessToken", "output", "error"} {
		if _, ok := m[k]; !ok {
			t.Errorf("manifest has no %q: %v", k, m)
		}
	}
	if m["requiresAccessToken"] != true {
		t.Errorf("requiresAccessToken = %v, want true", m["requiresAccessToken"])
	}
	if m["request"] != e.c.Base+"/$export" {
		t.Errorf("request = %v, want %s", m["request"], e.c.Base+"/$export")
	}
	if _, err := time.Parse(time.RFC3339Nano, m["transactionTime"].(string)); err != nil {
		t.Errorf("transactionTime: %v", err)
	}
	if errs, ok := m["error"].([]any); !ok || len(errs) != 0 {
		t.Errorf("error = %v, want []", m["error"])
	}
	got := e.download("h2", m, "output")
	want := map[string][]string{
		"Patient":      {"r2", "r3", "r4"},
		"Procedure":    {"p2", "p3", "p4"},
		"AdverseEvent": {"e3"},
		"Specimen":     {"l1", "l2", "l3", "l9"}, // product lots are shared
	}
	for typ, w := range want {
		if g := ids(got[typ]); !slices.Equal(w, g) {
			t.Errorf("%s: want %v, got %v", typ, w, g)
		}
	}
	if g := types(got); !slices.Equal([]string{"AdverseEvent", "Patient", "Procedure", "Specimen"}, g) {
		t.Errorf("types: want AdverseEvent, Patient, Procedure, Specimen, got %v", g)
	}
}

// testRegulator: the regulator's export spans every tenant, de-identified
// (no names, no national ids in any line), without the banks' donors.
func testRegulator(t *testing.T, b backend) {
	e := newEnv(t, b, setup{})
	m := e.poll("gov", e.kickoff("gov", "/$export"))
	got := e.download("gov", m, "output")
	if g := ids(got["Patient"]); !slices.Equal([]string{"r1", "r2", "r3", "r4"}, g) {
		t.Errorf("Patient: want r1..r4 (no donors), got %v", g)
	}
	if g := ids(got["Procedure"]); !slices.Equal([]string{"p1", "p2", "p3", "p4"}, g) {
		t.Errorf("Procedure: want p1..p4, got %v", g)
	}
	for typ, rs := range got {
		for _, r := range rs {
			b, _ := json.Marshal(r)
			for _, leak := range []string{`"name"`, "Recipient ", "Donor ", "ID-r", "1970-05-06"} {
				if bytes.Contains(b, []byte(leak)) {
					t.Errorf("%s/%s shows %q to the regulator: %s", typ, r["id"], leak, b)
				}
			}
		}
	}
	// The same regulator's token cannot download another's job.
	res := e.c.Do(http.MethodGet, m["output"].([]any)[0].(map[string]any)["url"].(string), nil, "Authorization", "Bearer h2")
	if res.Status != http.StatusNotFound {
		t.Errorf("download by another principal: want 404, got %d", res.Status)
	}
}

func testParameters(t *testing.T, b backend) {
	e := newEnv(t, b, setup{maxJobs: 100})
	for _, f := range []string{"application/fhir+ndjson", "application/ndjson", "ndjson"} {
		e.kickoff("h1", "/$export?_type=Patient&_outputFormat="+url.QueryEscape(f))
	}
	m := e.poll("h1", e.kickoff("h1", "/$export?_type=Patient,AdverseEvent"))
	got := e.download("h1", m, "output")
	if g := types(got); !slices.Equal([]string{"AdverseEvent", "Patient"}, g) {
		t.Errorf("_type=Patient,AdverseEvent: got files of %v", g)
	}
	// _elements: Patients with their gender only (and what is always kept).
	m = e.poll("h1", e.kickoff("h1", "/$export?_type=Patient,Procedure&_elements=Patient.gender,status"))
	got = e.download("h1", m, "output")
	if p := got["Patient"]; len(p) != 1 || p[0]["gender"] != "female" || p[0]["name"] != nil || p[0]["birthDate"] != nil {
		t.Errorf("_elements=Patient.gender: got %v", p)
	}
	if p := got["Procedure"]; len(p) != 1 || p[0]["status"] != "completed" || p[0]["performedDateTime"] != nil {
		t.Errorf("_elements=status on Procedure: got %v", p)
	}
	// POST with a Parameters body: the same parameters.
	params := []byte(`{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Procedure"},` +
		`{"name":"_outputFormat","valueString":"application/fhir+ndjson"}]}`)
	res := e.c.Do(http.MethodPost, "/$export", params, append(slices.Clone(kickoffHeaders), "Authorization", "Bearer h1")...)
	if res.Status != http.StatusAccepted {
		t.Fatalf("POST $export: want 202, got %d %s", res.Status, res.Body)
	}
	if g := types(e.download("h1", e.poll("h1", res.Header.Get("Content-Location")), "output")); !slices.Equal([]string{"Procedure"}, g) {
		t.Errorf("POST _type=Procedure: got files of %v", g)
	}
	if g := ids(got["Patient"]); !slices.Equal([]string{"r1"}, g) {
		t.Errorf("h1 Patient: want r1, got %v", g)
	}
	for _, q := range []string{"_outputFormat=text/csv", "_type=NoSuchType", "_typeFilter=" + url.QueryEscape("Patient?_sort=name"), "_typeFilter=" + url.QueryEscape("Patient?nosuchparam=1"), "_since=yesterday"} {
		h := append(slices.Clone(kickoffHeaders), "Authorization", "Bearer h1")
		res := e.c.Do(http.MethodGet, "/$export?"+q, nil, h...)
		if res.Status != http.StatusBadRequest || res.JSON(t)["resourceType"] != "OperationOutcome" {
			t.Errorf("%s: want 400 with an OperationOutcome, got %d %s", q, res.Status, res.Body)
		}
		if q == "_since=yesterday" {
			continue // not a parameter we ignore: a value we cannot read
		}
		h[3] = "respond-async, handling=lenient"
		if res := e.c.Do(http.MethodGet, "/$export?"+q, nil, h...); res.Status != http.StatusAccepted {
			t.Errorf("%s, lenient: want 202, got %d %s", q, res.Status, res.Body)
		}
	}
}

// next writes the version after the current one of typ/id: body, or a
// tombstone when body is nil.
func next(t *testing.T, r *opstest.Registry, typ, id string, body []byte) {
	t.Helper()
	ctx := context.Background()
	cur, err := r.St.Read(ctx, store.Access{Everyone: true}, typ, id)
	if err != nil {
		t.Fatal(err)
	}
	v := store.Version{Tenant: cur.Tenant, Type: typ, ID: id, VersionID: cur.VersionID + 1, LastUpdated: time.Now().UTC(),
		Resource: body, Deleted: body == nil, Method: "PUT", Reach: cur.Reach}
	if body != nil {
		if v.Index, err = r.Engine.Entries(typ, body); err != nil {
			t.Fatal(err)
		}
	} else {
		v.Method = "DELETE"
	}
	if err := r.St.Put(ctx, store.Write{PrevVersion: cur.VersionID, Version: v}); err != nil {
		t.Fatal(err)
	}
}

// testTransactionTime: the export shows the store as it was when the job
// was accepted: a resource created after is absent, one changed after is
// there as it was, one deleted after is there too.
func testTransactionTime(t *testing.T, b backend) {
	e := newEnv(t, b, setup{noWorker: true})
	status := e.kickoff("h2", "/$export?_type=Patient")
	time.Sleep(5 * time.Millisecond)
	e.r.Recipient("h2", "r9")
	next(t, e.r, "Patient", "r2", []byte(`{"resourceType":"Patient","id":"r2","name":[{"family":"Changed"}]}`))
	next(t, e.r, "Patient", "r3", nil)
	if err := e.ex.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := e.download("h2", e.poll("h2", status), "output")["Patient"]
	if g := ids(got); !slices.Equal([]string{"r2", "r3", "r4"}, g) {
		t.Errorf("Patients: want r2, r3, r4 as at the transaction time, got %v", g)
	}
	for _, r := range got {
		if b, _ := json.Marshal(r); bytes.Contains(b, []byte("Changed")) {
			t.Errorf("r2 exported as changed after the transaction time: %s", b)
		}
	}
}

// testTypeFilter: _typeFilter narrows the types it names (any of its
// queries per type), and leaves the others whole.
func testTypeFilter(t *testing.T, b backend) {
	e := newEnv(t, b, setup{})
	q := url.QueryEscape("Patient?_id=r2,Patient?_id=r4,Procedure?subject=Patient/r3")
	m := e.poll("h2", e.kickoff("h2", "/$export?_type=Patient,Procedure,AdverseEvent&_typeFilter="+q))
	got := e.download("h2", m, "output")
	for typ, want := range map[string][]string{"Patient": {"r2", "r4"}, "Procedure": {"p3"}, "AdverseEvent": {"e3"}} {
		if g := ids(got[typ]); !slices.Equal(want, g) {
			t.Errorf("%s: want %v, got %v", typ, want, g)
		}
	}
}

// testSince: _since keeps what changed after it and lists what was
// deleted in between.
func testSince(t *testing.T, b backend) {
	e := newEnv(t, b, setup{})
	time.Sleep(5 * time.Millisecond)
	since := time.Now().UTC()
	time.Sleep(5 * time.Millisecond)
	e.r.Recipient("h2", "r5")
	cur, err := e.r.St.Read(context.Background(), store.Tenant("h2"), "Patient", "r4")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.r.St.Put(context.Background(), store.Write{PrevVersion: cur.VersionID, Version: store.Version{Tenant: "h2",
		Type: "Patient", ID: "r4", VersionID: cur.VersionID + 1, LastUpdated: time.Now().UTC(), Deleted: true, Method: "DELETE", Reach: cur.Reach}}); err != nil {
		t.Fatal(err)
	}
	m := e.poll("h2", e.kickoff("h2", "/$export?_since="+url.QueryEscape(since.Format(time.RFC3339Nano))))
	got := e.download("h2", m, "output")
	if g := types(got); !slices.Equal([]string{"Patient"}, g) || !slices.Equal([]string{"r5"}, ids(got["Patient"])) {
		t.Errorf("_since: want Patient r5 only, got %v", got)
	}
	deleted := e.download("h2", m, "deleted")
	if len(deleted["Bundle"]) != 1 {
		t.Fatalf("deleted: want one Bundle, got %v", deleted)
	}
	body, _ := json.Marshal(deleted["Bundle"][0])
	if !bytes.Contains(body, []byte(`"method":"DELETE","url":"Patient/r4"`)) {
		t.Errorf("deleted: want DELETE Patient/r4, got %s", body)
	}
}

// testPatientExport: the patients the caller sees and what is in their
// compartments; a donor's lots (subject: the donor) are not.
func testPatientExport(t *testing.T, b backend) {
	e := newEnv(t, b, setup{})
	m := e.poll("h2", e.kickoff("h2", "/Patient/$export"))
	got := e.download("h2", m, "output")
	if g := types(got); !slices.Equal([]string{"AdverseEvent", "Patient", "Procedure"}, g) {
		t.Errorf("types: want AdverseEvent, Patient, Procedure, got %v", g)
	}
	if g := ids(got["Patient"]); !slices.Equal([]string{"r2", "r3", "r4"}, g) {
		t.Errorf("Patient: got %v", g)
	}
	m = e.poll("h2", e.kickoff("h2", "/Patient/$export?_type=Procedure"))
	if g := types(e.download("h2", m, "output")); !slices.Equal([]string{"Procedure"}, g) {
		t.Errorf("_type=Procedure: got files of %v", g)
	}
}

// testGroupExport: the Group's member Patients the caller sees and their
// compartments; another tenant's group is unknown.
func testGroupExport(t *testing.T, b backend) {
	e := newEnv(t, b, setup{})
	body := []byte(`{"resourceType":"Group","id":"g1","type":"person","actual":true,"member":[` +
		`{"entity":{"reference":"Patient/r2"}},{"entity":{"reference":"Patient/r3"}},{"entity":{"reference":"Patient/r4"},"inactive":true}]}`)
	idx, err := e.r.Engine.Entries("Group", body)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.r.St.Put(context.Background(), store.Write{Version: store.Version{Tenant: "h2", Type: "Group", ID: "g1", VersionID: 1,
		LastUpdated: time.Now().UTC(), Resource: body, Index: idx, Method: "PUT"}}); err != nil {
		t.Fatal(err)
	}
	m := e.poll("h2", e.kickoff("h2", "/Group/g1/$export"))
	got := e.download("h2", m, "output")
	for typ, want := range map[string][]string{"Patient": {"r2", "r3"}, "Procedure": {"p2", "p3"}, "AdverseEvent": {"e3"}} {
		if g := ids(got[typ]); !slices.Equal(want, g) {
			t.Errorf("%s: want %v, got %v", typ, want, g)
		}
	}
	h := append(slices.Clone(kickoffHeaders), "Authorization", "Bearer h1")
	for _, path := range []string{"/Group/g1/$export", "/Group/nope/$export"} {
		if res := e.c.Do(http.MethodGet, path, nil, h...); res.Status != http.StatusNotFound {
			t.Errorf("h1 %s: want 404, got %d %s", path, res.Status, res.Body)
		}
	}
}

// testCancel: DELETE on the status URL answers 202; the status URL then
// answers 404 with an OperationOutcome, and the files are gone.
func testCancel(t *testing.T, b backend) {
	e := newEnv(t, b, setup{})
	status := e.kickoff("h1", "/$export")
	m := e.poll("h1", status)
	file := m["output"].([]any)[0].(map[string]any)["url"].(string)
	if res := e.c.Do(http.MethodDelete, status, nil, "Authorization", "Bearer h1"); res.Status != http.StatusAccepted {
		t.Fatalf("DELETE: want 202, got %d %s", res.Status, res.Body)
	}
	for _, u := range []string{status, file} {
		res := e.c.Do(http.MethodGet, u, nil, "Authorization", "Bearer h1")
		if res.Status != http.StatusNotFound || res.JSON(t)["resourceType"] != "OperationOutcome" {
			t.Errorf("GET %s after cancel: want 404 with an OperationOutcome, got %d %s", u, res.Status, res.Body)
		}
	}
	if res := e.c.Do(http.MethodDelete, status, nil, "Authorization", "Bearer h1"); res.Status != http.StatusNotFound {
		t.Errorf("DELETE again: want 404, got %d", res.Status)
	}
}

// testOtherPrincipal: a job is its starter's: another subject of the same
// tenant sees no status and downloads nothing; no token is 401.
func testOtherPrincipal(t *testing.T, b backend) {
	e := newEnv(t, b, setup{})
	status := e.kickoff("h1", "/$export")
	m := e.poll("h1", status)
	file := m["output"].([]any)[0].(map[string]any)["url"].(string)
	for _, tc := range []struct {
		url, token string
		want       int
	}{
		{status, "h1bob", http.StatusNotFound},
		{file, "h1bob", http.StatusNotFound},
		{file, "", http.StatusUnauthorized},
		{status, "", http.StatusUnauthorized},
	} {
		if res := e.c.Do(http.MethodGet, tc.url, nil, "Authorization", "Bearer "+tc.token); res.Status != tc.want {
			t.Errorf("GET %s as %q: want %d, got %d", tc.url, tc.token, tc.want, res.Status)
		}
	}
	if res := e.c.Do(http.MethodDelete, status, nil, "Authorization", "Bearer h1bob"); res.Status != http.StatusNotFound {
		t.Errorf("DELETE by another subject: want 404, got %d", res.Status)
	}
}

// testTooMany: with no worker to run them, a tenant's jobs pile up to the
// bound; one more is 429 with Retry-After; another tenant is not held back.
func testTooMany(t *testing.T, b backend) {
	e := newEnv(t, b, setup{noWorker: true, maxJobs: 2})
	status := e.kickoff("h1", "/$export")
	e.kickoff("h1bob", "/$export")
	h := append(slices.Clone(kickoffHeaders), "Authorization", "Bearer h1")
	res := e.c.Do(http.MethodGet, "/$export", nil, h...)
	if res.Status != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Errorf("third job: want 429 with Retry-After, got %d %q %s", res.Status, res.Header.Get("Retry-After"), res.Body)
	}
	e.kickoff("h2", "/$export")
	// Not running yet: 202 with progress.
	res = e.c.Do(http.MethodGet, status, nil, "Authorization", "Bearer h1")
	if res.Status != http.StatusAccepted || res.Header.Get("X-Progress") == "" || res.Header.Get("Retry-After") == "" {
		t.Errorf("waiting job: want 202 with X-Progress and Retry-After, got %d %v", res.Status, res.Header)
	}
	// Cancelling one makes room.
	e.c.Do(http.MethodDelete, status, nil, "Authorization", "Bearer h1")
	e.kickoff("h1", "/$export")
}

// testRestart: a job accepted by a server that stopped before running it
// is run by the next server's worker on the same store and directory.
func testRestart(t *testing.T, b backend) {
	first := newEnv(t, b, setup{noWorker: true})
	status := first.kickoff("h2", "/$export?_type=Patient")
	second := newEnv(t, b, setup{st: first.r.St, files: first.files})
	m := second.poll("h2", strings.Replace(status, first.c.Base, second.c.Base, 1))
	if g := ids(second.download("h2", m, "output")["Patient"]); !slices.Equal([]string{"r2", "r3", "r4"}, g) {
		t.Errorf("after restart: want r2, r3, r4, got %v", g)
	}
}
