package ops

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/fmtbank/cmts/profiles/synth"
	"github.com/google/go-cmp/cmp"
)

// TestDecoders: the walker reads what encoding/json reads, from the
// synthetic registry's bodies as written and indented, and refuses
// malformed JSON.
func TestDecoders(t *testing.T) {
	t.Parallel()
	g, err := synth.Generate(synth.Options{Patients: 60, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for k := range g.Len() {
		r := g.Resource(k)
		var indented bytes.Buffer
		if err := json.Indent(&indented, r.Body, "", "  "); err != nil {
			t.Fatal(err)
		}
		for _, body := range [][]byte{r.Body, indented.Bytes()} {
			var got, want any
			switch r.Type {
			case "Procedure":
				got, err = decodeProcedure(body)
				want = procedureByJSON(t, body)
			case "AdverseEvent":
				got, err = decodeEvent(body)
				want = eventByJSON(t, body)
			case "Condition":
				var c struct{ Code struct{ Coding []coding } }
				_ = json.Unmarshal(body, &c)
				got, err = decodeCondition(body)
				want = c.Code.Coding
			default:
				continue
			}
			n[r.Type]++
			if err != nil {
				t.Fatalf("%s/%s: %v", r.Type, r.ID, err)
			}
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(procFields{}, eventFields{}, aeSuspect{})); diff != "" {
				t.Fatalf("%s/%s (-want +got):\n%s", r.Type, r.ID, diff)
			}
		}
	}
	if n["Procedure"] == 0 || n["AdverseEvent"] == 0 || n["Condition"] == 0 {
		t.Fatalf("decoded %v", n)
	}
	for _, bad := range []string{`{"status":"x"`, `{"status" "x"}`, `{"extension":[{"url":"a"}`, `{"code":{"coding":[{"code":"a}]}}`, `{"a":}`} {
		if _, err := decodeProcedure([]byte(bad)); err == nil {
			t.Errorf("decodeProcedure(%s): want an error", bad)
		}
	}
}

func procedureByJSON(t *testing.T, body []byte) procFields {
	var p struct {
		Meta      struct{ Profile []string }
		Status    string
		Extension []struct {
			URL              string
			ValueCode        string
			ValuePositiveInt *int
		}
		Code              struct{ Coding []coding }
		Subject           reference
		PerformedDateTime string
		ReasonReference   []reference
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	f := procFields{status: p.Status, code: p.Code.Coding, subject: p.Subject.id("Patient"), performed: p.PerformedDateTime}
	for _, pr := range p.Meta.Profile {
		f.wmtProfile = f.wmtProfile || pr == profileBase+wmtProcedure
	}
	for _, e := range p.Extension {
		switch {
		case e.URL == routeURL:
			f.route = e.ValueCode
		case e.URL == courseURL && e.ValuePositiveInt != nil:
			f.course = strconv.Itoa(*e.ValuePositiveInt)
		}
	}
	if len(p.ReasonReference) > 0 {
		f.reason = p.ReasonReference[0].id("Condition")
	}
	return f
}

func eventByJSON(t *testing.T, body []byte) eventFields {
	var e struct {
		Actuality string
		Extension []struct {
			URL          string
			ValueInteger *int
		}
		Event, Seriousness, Severity struct{ Coding []coding }
		SuspectEntity                []struct {
			Instance  reference
			Causality []struct{ Assessment struct{ Coding []coding } }
		}
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatal(err)
	}
	f := eventFields{actuality: e.Actuality, term: e.Event.Coding, seriousness: e.Seriousness.Coding, severity: e.Severity.Coding}
	for _, x := range e.Extension {
		if x.URL == ctcaeURL && x.ValueInteger != nil {
			f.grade = strconv.Itoa(*x.ValueInteger)
		}
	}
	for _, s := range e.SuspectEntity {
		sp := aeSuspect{proc: s.Instance.id("Procedure")}
		for _, c := range s.Causality {
			if r := (concept{Coding: c.Assessment.Coding}).code(csBase + "relatedness"); r != "" {
				sp.relatedness = r
				break
			}
		}
		f.suspects = append(f.suspects, sp)
	}
	return f
}
