package synth_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fmtbank/cmts/profiles/synth"
)

func generate(t *testing.T, n int, seed uint64) *synth.Registry {
	t.Helper()
	reg, err := synth.Generate(synth.Options{Patients: n, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func all(reg *synth.Registry) []synth.Resource {
	out := make([]synth.Resource, reg.Len())
	for k := range out {
		out[k] = reg.Resource(k)
	}
	return out
}

func TestDeterministic(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		patients int
		seed     uint64
	}{{"one patient", 1, 1}, {"300 patients seed 42", 300, 42}, {"300 patients seed 0", 300, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := generate(t, tc.patients, tc.seed), generate(t, tc.patients, tc.seed)
			want := all(a)
			// The second rendered concurrently, in reverse order: the
			// output may not depend on who renders what when.
			got := make([]synth.Resource, b.Len())
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for k := b.Len() - 1 - w; k >= 0; k -= 4 {
						got[k] = b.Resource(k)
					}
				}()
			}
			wg.Wait()
			if diff := cmp.Diff(view(want), view(got)); diff != "" {
				t.Errorf("same seed, different registry (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(a.Truth(), b.Truth()); diff != "" {
				t.Errorf("same seed, different truth (-want +got):\n%s", diff)
			}
			// (cmp.Equal on two long, different slices searches for the
			// smallest edit: compare the bodies as bytes instead.)
			if bytes.Equal(concat(want), concat(all(generate(t, tc.patients, tc.seed+1)))) {
				t.Error("another seed made the same registry")
			}
		})
	}
}

// resourceView is a Resource with its body as a string (cmp compares a
// []byte element by element).
type resourceView struct {
	Tenant, Type, ID, Profile string
	Version                   int64
	LastUpdated               time.Time
	Body                      string
}

func view(rs []synth.Resource) []resourceView {
	out := make([]resourceView, len(rs))
	for i, r := range rs {
		out[i] = resourceView{r.Tenant, r.Type, r.ID, r.Profile, r.Version, r.LastUpdated, string(r.Body)}
	}
	return out
}

func concat(rs []synth.Resource) []byte {
	var b []byte
	for _, r := range rs {
		b = append(b, r.Body...)
	}
	return b
}

func TestGenerateRefusesNoPatients(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, -1} {
		if _, err := synth.Generate(synth.Options{Patients: n}); err == nil {
			t.Errorf("Generate(%d patients) succeeded", n)
		}
	}
}

// parsed is the registry read back from its resources' JSON alone, as a
// report implementation would see it.
type parsed struct {
	current map[string]map[string]any   // "Type/id" -> last version
	history map[string][]map[string]any // "Type/id" -> versions in order
	tenant  map[string]string           // "Type/id" -> tenant
}

func parse(t *testing.T, reg *synth.Registry) *parsed {
	t.Helper()
	p := &parsed{current: map[string]map[string]any{}, history: map[string][]map[string]any{}, tenant: map[string]string{}}
	for _, r := range all(reg) {
		var m map[string]any
		if err := json.Unmarshal(r.Body, &m); err != nil {
			t.Fatalf("%s/%s: %v", r.Type, r.ID, err)
		}
		key := r.Type + "/" + r.ID
		if m["resourceType"] != r.Type || m["id"] != r.ID {
			t.Fatalf("%s: body says %v/%v", key, m["resourceType"], m["id"])
		}
		if v := m["meta"].(map[string]any)["versionId"]; v != strconv.FormatInt(r.Version, 10) || int64(len(p.history[key]))+1 != r.Version {
			t.Fatalf("%s: version %d written after %d versions (meta says %v)", key, r.Version, len(p.history[key]), v)
		}
		p.current[key] = m
		p.history[key] = append(p.history[key], m)
		p.tenant[key] = r.Tenant
	}
	return p
}

func (p *parsed) ofProfile(profile string) []string {
	var out []string
	for k, m := range p.current {
		if ps, _ := m["meta"].(map[string]any)["profile"].([]any); len(ps) > 0 && ps[0] == "http://fmtbank.org/fhir/StructureDefinition/"+profile {
			out = append(out, k)
		}
	}
	return out
}

func extValue(m map[string]any, name string) []any {
	var out []any
	exts, _ := m["extension"].([]any)
	for _, x := range exts {
		e := x.(map[string]any)
		if e["url"] != "http://fmtbank.org/fhir/StructureDefinition/"+name {
			continue
		}
		for k, v := range e {
			if strings.HasPrefix(k, "value") {
				out = append(out, v)
			}
		}
	}
	return out
}

func code(cc any) string {
	return cc.(map[string]any)["coding"].([]any)[0].(map[string]any)["code"].(string)
}

func refOf(r any) string { return r.(map[string]any)["reference"].(string) }

func when(t *testing.T, s string) time.Time {
	t.Helper()
	for _, layout := range []string{time.RFC3339, "2006-01-02"} {
		if tm, err := time.Parse(layout, s); err == nil {
			return tm
		}
	}
	t.Fatalf("bad dateTime %q", s)
	return time.Time{}
}

// walkRefs calls f with every reference in v.
func walkRefs(v any, f func(string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "reference" {
				f(s)
				continue
			}
			walkRefs(x, f)
		}
	case []any:
		for _, x := range v {
			walkRefs(x, f)
		}
	}
}

// TestConsistent checks what the profiles cannot: every reference
// resolves to a generated resource; every lot a procedure used was
// released at the time (by its versions' status-date, not past expiry);
// adverse events follow their suspect procedures; efficacy points at the
// last procedure of the recipient.
func TestConsistent(t *testing.T) {
	t.Parallel()
	reg := generate(t, 600, 11)
	p := parse(t, reg)
	for key, m := range p.current {
		walkRefs(m, func(r string) {
			if _, ok := p.current[r]; !ok {
				t.Errorf("%s refers to %s, which was not generated", key, r)
			}
		})
	}
	procs := p.ofProfile("cmts-wmt-procedure")
	if len(procs) == 0 {
		t.Fatal("no procedures")
	}
	lastProc := map[string]time.Time{}
	for _, key := range procs {
		m := p.current[key]
		at := when(t, m["performedDateTime"].(string))
		subj := refOf(m["subject"])
		if at.After(lastProc[subj]) {
			lastProc[subj] = at
		}
		if !at.Before(when(t, synthNow)) {
			t.Errorf("%s performed at %s, after the registry's now", key, at)
		}
		for _, l := range extValue(m, "product-lot") {
			lot := refOf(l)
			var status string
			var since, expiry time.Time
			for _, v := range p.history[lot] {
				sd := when(t, extValue(v, "status-date")[0].(string))
				if sd.After(at) || sd.Before(since) {
					continue
				}
				status, since, expiry = extValue(v, "release-status")[0].(string), sd, when(t, extValue(v, "expiry")[0].(string))
			}
			if status != "released" || !at.Before(expiry) {
				t.Errorf("%s at %s used %s, whose status then was %q (since %s, expiry %s)", key, at, lot, status, since, expiry)
			}
		}
	}
	for _, key := range p.ofProfile("cmts-adverse-event") {
		m := p.current[key]
		at := when(t, m["date"].(string))
		for _, s := range m["suspectEntity"].([]any) {
			proc := p.current[refOf(s.(map[string]any)["instance"])]
			if at.Before(when(t, proc["performedDateTime"].(string))) {
				t.Errorf("%s at %s precedes its suspect %v", key, at, proc["id"])
			}
			if refOf(proc["subject"]) != refOf(m["subject"]) {
				t.Errorf("%s suspects another patient's procedure", key)
			}
		}
	}
	for _, key := range p.ofProfile("cmts-efficacy") {
		m := p.current[key]
		focus := p.current[refOf(m["focus"].([]any)[0])]
		if got := when(t, focus["performedDateTime"].(string)); !got.Equal(lastProc[refOf(m["subject"])]) {
			t.Errorf("%s assesses %v, not the last procedure", key, focus["id"])
		}
	}
}

const synthNow = "2026-07-01T00:00:00+08:00"

// TestProportions checks the cohort's shape on 2,000 patients, counted
// from the resources.
func TestProportions(t *testing.T) {
	t.Parallel()
	reg := generate(t, 2000, 5)
	p := parse(t, reg)
	share := func(n, d int) float64 { return float64(n) / float64(d) }
	within := func(what string, got, lo, hi float64) {
		t.Helper()
		if got < lo || got > hi || math.IsNaN(got) {
			t.Errorf("%s = %.3f, want within [%.3f, %.3f]", what, got, lo, hi)
		}
	}
	// Donors: about 3% of candidates qualify.
	donors := p.ofProfile("cmts-donor")
	qualified := 0
	for _, k := range donors {
		if extValue(p.current[k], "donor-status")[0] == "qualified" {
			qualified++
		}
	}
	within("qualified share of donor candidates", share(qualified, len(donors)), 0.015, 0.05)
	// Indications.
	wantInd := map[string]float64{"A04.7": 0.06, "K51": 0.22, "K50": 0.12, "K58": 0.12, "K59.0": 0.24,
		"radiation-enteritis": 0.06, "hepatic-encephalopathy": 0.04, "autism": 0.08, "other": 0.06}
	conds := p.ofProfile("cmts-indication")
	gotInd := map[string]int{}
	for _, k := range conds {
		gotInd[code(p.current[k]["code"])]++
	}
	for c, w := range wantInd {
		within("share of indication "+c, share(gotInd[c], len(conds)), w-0.03, w+0.03)
	}
	// Adverse events: 8-10% of patients expected, mostly mild.
	aes := p.ofProfile("cmts-adverse-event")
	withAE, mild := map[string]bool{}, 0
	for _, k := range aes {
		withAE[refOf(p.current[k]["subject"])] = true
		if code(p.current[k]["severity"]) == "mild" {
			mild++
		}
	}
	within("patients with an adverse event", share(len(withAE), len(conds)), 0.07, 0.115)
	within("mild adverse events", share(mild, len(aes)), 0.65, 0.95)
	// Courses of 1-3 procedures.
	perCourse := map[string]int{}
	routes := map[string]bool{}
	for _, k := range p.ofProfile("cmts-wmt-procedure") {
		m := p.current[k]
		perCourse[fmt.Sprint(refOf(m["subject"]), extValue(m, "course")[0])]++
		routes[extValue(m, "route")[0].(string)] = true
	}
	for c, n := range perCourse {
		if n < 1 || n > 3 {
			t.Errorf("course %s has %d procedures", c, n)
		}
	}
	if len(routes) != 7 {
		t.Errorf("routes used: %v, want all 7", routes)
	}
	// Lots: released, recalled and discarded ones.
	status := map[string]int{}
	for _, k := range p.ofProfile("cmts-microbiota-product") {
		status[extValue(p.current[k], "release-status")[0].(string)]++
	}
	for _, s := range []string{"released", "recalled", "discarded"} {
		if status[s] == 0 {
			t.Errorf("no lot %s (%v)", s, status)
		}
	}
	within("recalled or discarded lots", share(status["recalled"]+status["discarded"], status["released"]+status["recalled"]+status["discarded"]), 0.02, 0.12)
	// Tenants: every hospital and bank writes.
	tenants := map[string]bool{}
	for _, tn := range p.tenant {
		tenants[tn] = true
	}
	for _, tn := range []string{"bank-xa", "bank-nj", "hospital-a", "hospital-b", "hospital-c", "nhc"} {
		if !tenants[tn] {
			t.Errorf("tenant %s wrote nothing", tn)
		}
	}
	// Missed visits: some, not most.
	tr := reg.Truth()
	missed, assessed := 0, 0
	for _, e := range tr.Efficacy {
		if e.Measure == "clinical-response" {
			missed += e.DueNotAssessed
			assessed += e.Denominator
		}
	}
	within("missed follow-up visits", share(missed, missed+assessed), 0.05, 0.3)
}
