package profiles

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fmtbank/cmts/fhir"
	"github.com/google/go-cmp/cmp"
)

// The names below are copied from wmt-ig.md, the contract tests outside
// this repository rely on; the guide must define each exactly so.
var (
	contractProfiles = map[string]string{
		"cmts-donor": "Patient", "cmts-recipient": "Patient", "cmts-stool-donation": "Specimen",
		"cmts-microbiota-product": "Specimen", "cmts-donor-screening": "Observation",
		"cmts-product-qc": "Observation", "cmts-pretreatment-risk": "RiskAssessment",
		"cmts-indication": "Condition", "cmts-wmt-procedure": "Procedure", "cmts-efficacy": "Observation",
		"cmts-adverse-event": "AdverseEvent", "cmts-consultation": "Task",
	}
	// extension id -> value type
	contractExtensions = map[string]string{
		"donor-status": "code", "financial-hardship": "boolean", "release-status": "code",
		"status-date": "dateTime", "expiry": "dateTime", "route": "code", "product-lot": "Reference",
		"dose": "Quantity", "course": "positiveInt", "session": "positiveInt", "follow-up": "code",
		"ctcae-grade": "integer",
	}
	contractCodes = map[string][]string{
		"transplant-type":  {"wmt", "fmt-manual", "smt"},
		"route":            {"mid-gut-tet", "colonic-tet", "colonoscopy", "gastroscopy", "nasojejunal", "capsule", "enema"},
		"release-status":   {"quarantined", "released", "recalled", "discarded", "expired"},
		"donor-status":     {"candidate", "qualified", "suspended", "excluded"},
		"product-type":     {"wmt-suspension", "wmt-capsule", "fmt-suspension"},
		"processing-step":  {"microfiltration", "centrifuge-wash", "resuspension", "freeze", "thaw"},
		"relatedness":      {"definitely", "probably", "possibly", "unlikely", "unrelated"},
		"ae-term":          {"fever", "diarrhoea", "abdominal-pain", "bloating", "nausea", "vomiting", "flatulence", "haematochezia", "infection", "other"},
		"efficacy-measure": {"clinical-response", "clinical-remission", "cdi-cure", "mayo-score", "partial-mayo", "hbi", "ibs-sss", "csbm-per-week"},
		"follow-up":        {"w1", "w4", "w8", "w12", "m6", "m12", "m24"},
		"consultation":     {"expert-consultation", "free-wmt-application"},
	}
	// search parameter id -> type
	contractSearch = map[string]string{
		"Procedure-product-lot": "reference", "Procedure-route": "token", "Procedure-course": "number",
		"AdverseEvent-relatedness": "token", "AdverseEvent-ctcae-grade": "number",
		"Specimen-release-status": "token", "Observation-follow-up": "token",
	}
	// the Chinese displays wmt-ig.md gives
	contractZh = map[string]string{
		"wmt": "洗涤菌群移植", "mid-gut-tet": "中消化道经内镜肠道植管", "quarantined": "隔离待检", "released": "放行",
		"definitely": "肯定有关", "probably": "很可能有关", "possibly": "可能有关", "unlikely": "可能无关", "unrelated": "无关",
		"haematochezia": "便血", "free-wmt-application": "免费WMT申请", "cdi-cure": "艰难梭菌感染治愈",
	}
)

func guide(t *testing.T) map[string]Resource {
	t.Helper()
	rs, err := Guide()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]Resource{}
	for _, r := range rs {
		m[r.Type+"/"+r.ID] = r
	}
	return m
}

// TestGuideParses checks every conformance resource and every example is
// valid R4 as the server's codec reads it.
func TestGuideParses(t *testing.T) {
	t.Parallel()
	codec, err := fhir.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	for key, r := range guide(t) {
		if _, err := codec.Parse(r.JSON); err != nil {
			t.Errorf("%s: %v", key, err)
		}
	}
	examples, err := filepath.Glob("examples/*.json")
	if err != nil || len(examples) < len(contractProfiles) {
		t.Fatalf("examples: %d files, %v", len(examples), err)
	}
	for _, f := range examples {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := codec.Parse(b); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestGuideMatchesContract(t *testing.T) {
	t.Parallel()
	g := guide(t)
	for id, typ := range contractProfiles {
		r, ok := g["StructureDefinition/"+id]
		if !ok {
			t.Errorf("no profile %s", id)
			continue
		}
		if r.URL != Canonical+"/StructureDefinition/"+id || r.DefinedType != typ {
			t.Errorf("profile %s: url %s type %s", id, r.URL, r.DefinedType)
		}
		if !exampleClaims(t, Canonical+"/StructureDefinition/"+id) {
			t.Errorf("profile %s has no example in examples/", id)
		}
	}
	for id, vt := range contractExtensions {
		r, ok := g["StructureDefinition/"+id]
		if !ok {
			t.Errorf("no extension %s", id)
			continue
		}
		var sd struct {
			Snapshot struct {
				Element []struct {
					ID   string `json:"id"`
					Type []struct {
						Code string `json:"code"`
					} `json:"type"`
					FixedURI string `json:"fixedUri"`
				} `json:"element"`
			} `json:"snapshot"`
		}
		if err := json.Unmarshal(r.JSON, &sd); err != nil {
			t.Fatal(err)
		}
		var types []string
		url := ""
		for _, e := range sd.Snapshot.Element {
			switch e.ID {
			case "Extension.value[x]":
				for _, ty := range e.Type {
					types = append(types, ty.Code)
				}
			case "Extension.url":
				url = e.FixedURI
			}
		}
		if diff := cmp.Diff([]string{vt}, types); diff != "" || url != r.URL || r.URL != Canonical+"/StructureDefinition/"+id {
			t.Errorf("extension %s: url %s fixed %s, value types (-want +got):\n%s", id, r.URL, url, diff)
		}
	}
	for id, codes := range contractCodes {
		cs, ok := g["CodeSystem/"+id]
		if !ok || cs.URL != Canonical+"/CodeSystem/"+id {
			t.Errorf("code system %s: %v %s", id, ok, cs.URL)
			continue
		}
		if vs, ok := g["ValueSet/"+id]; !ok || vs.URL != Canonical+"/ValueSet/"+id {
			t.Errorf("no value set %s of all its codes", id)
		}
		var body struct {
			Concept []struct {
				Code        string `json:"code"`
				Display     string `json:"display"`
				Designation []struct {
					Language, Value string
				} `json:"designation"`
			} `json:"concept"`
		}
		if err := json.Unmarshal(cs.JSON, &body); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range body.Concept {
			got = append(got, c.Code)
			zh := ""
			for _, d := range c.Designation {
				if d.Language == "zh-CN" {
					zh = d.Value
				}
			}
			if c.Display == "" || zh == "" {
				t.Errorf("%s#%s: display %q, zh-CN %q", id, c.Code, c.Display, zh)
			}
			if want, ok := contractZh[c.Code]; ok && want != zh && id != "ae-term" {
				t.Errorf("%s#%s: zh-CN %q, want %q", id, c.Code, zh, want)
			}
		}
		if diff := cmp.Diff(codes, got); diff != "" {
			t.Errorf("code system %s codes (-want +got):\n%s", id, diff)
		}
	}
	for id, typ := range contractSearch {
		sp, ok := g["SearchParameter/"+id]
		if !ok || sp.URL != Canonical+"/SearchParameter/"+id {
			t.Errorf("search parameter %s: %v %s", id, ok, sp.URL)
			continue
		}
		var body struct{ Code, Type, Expression string }
		if err := json.Unmarshal(sp.JSON, &body); err != nil {
			t.Fatal(err)
		}
		if body.Type != typ || !strings.HasSuffix(id, "-"+body.Code) || sp.Base[0]+"-"+body.Code != id {
			t.Errorf("search parameter %s: code %s type %s base %v", id, body.Code, body.Type, sp.Base)
		}
	}
	if vs, ok := g["ValueSet/indication"]; !ok || !strings.Contains(string(vs.JSON), `"K59.0"`) {
		t.Error("value set indication lacks ICD-10 K59.0")
	}
	for _, id := range []string{"relatedness-to-who-umc", "relatedness-to-research"} {
		if _, ok := g["ConceptMap/"+id]; !ok {
			t.Errorf("no ConceptMap %s", id)
		}
	}
	if _, ok := g["ImplementationGuide/cmts-wmt"]; !ok {
		t.Error("no ImplementationGuide")
	}
}

// exampleClaims reports whether some file in examples/ claims the profile.
func exampleClaims(t *testing.T, url string) bool {
	t.Helper()
	files, _ := filepath.Glob("examples/*.json")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), `"profile":["`+url+`"]`) {
			return true
		}
	}
	return false
}
