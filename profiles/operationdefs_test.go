package profiles_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/fmtbank/cmts/auth/policy"
	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/bundle"
	"github.com/fmtbank/cmts/fhir/ops"
	"github.com/fmtbank/cmts/fhir/rest"
	"github.com/fmtbank/cmts/fhir/rest/resttest"
	"github.com/fmtbank/cmts/profiles"
	"github.com/google/go-cmp/cmp"
)

// operationDef is what these tests read of an OperationDefinition.
type operationDef struct {
	ResourceType, ID, URL, Code, Base string
	Kind                              string
	Resource                          []string
	System, Type, Instance            bool
	Parameter                         []struct{ Name, Use, Type string }
}

func operationDefs(t *testing.T) map[string]operationDef {
	t.Helper()
	g, err := profiles.Guide()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]operationDef{}
	for _, r := range g {
		if r.Type != "OperationDefinition" {
			continue
		}
		var d operationDef
		if err := json.Unmarshal(r.JSON, &d); err != nil {
			t.Fatal(err)
		}
		out[d.ID] = d
	}
	return out
}

// contractOperations are the operations of wmt-ig.md ("Operations") and
// the others the server runs, with where they run and their parameters
// (in, then out) as the contract and their implementations name them.
var contractOperations = []struct {
	id, code string
	resource []string
	levels   string // s: system, t: type, i: instance
	in, out  []string
}{
	{"trace", "trace", []string{"Specimen", "Patient"}, "i", nil, []string{"return"}},
	{"recall", "recall", []string{"Specimen", "Patient"}, "i", []string{"reason", "since"}, []string{"return"}},
	{"ae-report", "ae-report", []string{"AdverseEvent"}, "t",
		[]string{"start", "end", "indication", "route", "transplant-type", "interval"}, []string{"return"}},
	{"efficacy-report", "efficacy-report", []string{"Observation"}, "t",
		[]string{"start", "end", "indication", "route", "transplant-type", "measure"}, []string{"return"}},
	{"follow-up-due", "follow-up-due", []string{"Patient"}, "t", []string{"on"}, []string{"return"}},
	{"aid-eligibility", "aid-eligibility", []string{"Patient"}, "i", []string{"on"}, []string{"eligible", "reason"}},
	{"export", "export", nil, "s", []string{"_outputFormat", "_since", "_type", "_typeFilter", "_elements"}, nil},
	{"patient-export", "export", []string{"Patient"}, "t", []string{"_outputFormat", "_since", "_type", "_typeFilter", "_elements"}, nil},
	{"group-export", "export", []string{"Group"}, "i", []string{"_outputFormat", "_since", "_type", "_typeFilter", "_elements"}, nil},
	{"validate", "validate", []string{"Resource"}, "ti", []string{"resource", "mode", "profile"}, []string{"return"}},
	{"lookup", "lookup", []string{"CodeSystem"}, "ti", []string{"code", "system", "coding", "displayLanguage"}, []string{"name", "display", "designation"}},
	{"validate-code", "validate-code", []string{"ValueSet"}, "ti", []string{"url", "code", "system", "coding", "display", "displayLanguage"}, []string{"result", "message", "display"}},
	{"expand", "expand", []string{"ValueSet"}, "ti", []string{"url", "filter", "count", "offset", "displayLanguage"}, []string{"return"}},
	{"translate", "translate", []string{"ConceptMap"}, "ti", []string{"url", "code", "system", "coding", "target", "targetsystem"}, []string{"result", "message", "match"}},
}

// TestOperationDefinitions checks each OperationDefinition against the
// contract: canonical url and id, where it runs, its parameters; and that
// there is none the contract does not name.
func TestOperationDefinitions(t *testing.T) {
	t.Parallel()
	defs := operationDefs(t)
	codec, err := fhir.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	g, err := profiles.Guide()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range g {
		if r.Type == "OperationDefinition" {
			if _, err := codec.Parse(r.JSON); err != nil {
				t.Errorf("OperationDefinition/%s does not parse as R4: %v", r.ID, err)
			}
		}
	}
	for _, c := range contractOperations {
		d, ok := defs[c.id]
		if !ok {
			t.Errorf("no OperationDefinition/%s", c.id)
			continue
		}
		delete(defs, c.id)
		levels := ""
		for _, l := range []struct {
			on bool
			c  string
		}{{d.System, "s"}, {d.Type, "t"}, {d.Instance, "i"}} {
			if l.on {
				levels += l.c
			}
		}
		var in, out []string
		for _, p := range d.Parameter {
			if p.Use == "in" {
				in = append(in, p.Name)
			} else {
				out = append(out, p.Name)
			}
		}
		got := []any{d.URL, d.Kind, d.Code, d.Resource, levels, in, out}
		want := []any{profiles.Canonical + "/OperationDefinition/" + c.id, "operation", c.code, c.resource, c.levels, c.in, c.out}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("OperationDefinition/%s (-want +got):\n%s", c.id, diff)
		}
	}
	for id := range defs {
		t.Errorf("OperationDefinition/%s is not in the contract", id)
	}
}

// TestOperationsServedAndCited starts the server as cmd/cmts wires it and
// checks that every operation it runs has an OperationDefinition it serves,
// and that the CapabilityStatement cites each one it runs.
func TestOperationsServedAndCited(t *testing.T) {
	t.Parallel()
	st, svc, engine := guide(t, false)
	codec, err := fhir.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	pol := policy.New(engine)
	w, err := bundle.NewWriter(bundle.Options{Store: st, Codec: codec, Indexer: engine, Validator: svc, Guard: pol})
	if err != nil {
		t.Fatal(err)
	}
	operations := ops.New(ops.Options{Store: st, Policy: pol, Writer: w})
	c := resttest.Serve(t, st, func(o *rest.Options) {
		o.Validator, o.Conformance, o.Indexer, o.Operations = svc, svc, engine, operations
	})

	// Every OperationDefinition is served at its id and found by url.
	for id, d := range operationDefs(t) {
		r := c.Do(http.MethodGet, "/OperationDefinition/"+id, nil)
		var got operationDef
		if err := json.Unmarshal(r.Body, &got); r.Status != http.StatusOK || err != nil || got.URL != d.URL {
			t.Errorf("GET /OperationDefinition/%s: %d %.200s", id, r.Status, r.Body)
		}
		if r := c.Do(http.MethodGet, "/OperationDefinition?url="+d.URL, nil); !strings.Contains(string(r.Body), `"total":1`) {
			t.Errorf("GET /OperationDefinition?url=%s: %.200s", d.URL, r.Body)
		}
	}

	var cs struct {
		Rest []struct {
			Resource []struct {
				Type      string
				Operation []struct{ Name, Definition string }
			}
			Operation []struct{ Name, Definition string }
		}
	}
	if err := json.Unmarshal(c.Do(http.MethodGet, "/metadata", nil).Body, &cs); err != nil || len(cs.Rest) != 1 {
		t.Fatalf("metadata: %v", err)
	}
	cited := map[string][]string{} // type ("" for rest.operation) -> definitions
	for _, r := range cs.Rest[0].Resource {
		for _, o := range r.Operation {
			cited[r.Type] = append(cited[r.Type], o.Definition)
		}
	}
	for _, o := range cs.Rest[0].Operation {
		cited[""] = append(cited[""], o.Definition)
	}
	// Every operation the build runs, at every level: cited, by a
	// definition served here that names that type and level.
	defsByURL := map[string]operationDef{}
	for _, d := range operationDefs(t) {
		defsByURL[d.URL] = d
	}
	runs := 0
	for _, typ := range codec.ResourceTypes() {
		for _, name := range []string{"$trace", "$recall", "$ae-report", "$efficacy-report", "$follow-up-due", "$aid-eligibility"} {
			for _, instance := range []bool{false, true} {
				if !operations.Offers(typ, name, instance) {
					continue
				}
				runs++
				found := false
				for _, u := range cited[typ] {
					d := defsByURL[u]
					found = found || d.Code == strings.TrimPrefix(name, "$") && slices.Contains(d.Resource, typ) && (instance && d.Instance || !instance && d.Type)
				}
				if !found {
					t.Errorf("%s on %s (instance %v) runs, and the CapabilityStatement cites no definition of it: %v", name, typ, instance, cited[typ])
				}
			}
		}
	}
	if runs < 5 {
		t.Errorf("only %d operation levels found running; the probe is broken", runs)
	}
	for typ, want := range map[string]string{"": "validate", "CodeSystem": "lookup", "ValueSet": "expand", "ConceptMap": "translate"} {
		if !slices.Contains(cited[typ], profiles.Canonical+"/OperationDefinition/"+want) {
			t.Errorf("the CapabilityStatement does not cite $%s on %q: %v", want, typ, cited[typ])
		}
	}
	// And nothing it cites of ours is a definition it does not serve.
	for typ, urls := range cited {
		for _, u := range urls {
			if _, ok := defsByURL[u]; strings.HasPrefix(u, profiles.Canonical) && !ok {
				t.Errorf("%q cites %s, which is not served", typ, u)
			}
		}
	}
}
