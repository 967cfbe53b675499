package exporttest

import (
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/export"
	"github.com/fmtbank/cmts/store"
)

// unrenderable is a policy whose view of one resource fails.
type unrenderable struct {
	fhir.Policy
	typ, id string
}

func (u unrenderable) View(p *fhir.Principal, v *store.Version) ([]byte, error) {
	if v.Type == u.typ && v.ID == u.id {
		return nil, errors.New("cannot render")
	}
	return u.Policy.View(p, v)
}

// staleSearch is an indexer that compiles a search of typ at the
// kick-off, and no more afterwards (as when the server restarts without
// a search parameter the job's _typeFilter uses).
type staleSearch struct {
	export.Indexer
	typ   string
	calls atomic.Int32
}

func (s *staleSearch) Compile(typ string, params url.Values) (store.Expr, error) {
	if typ == s.typ && s.calls.Add(1) > 1 {
		return nil, fhir.Invalid(fhir.IssueNotSupported, "Unknown search parameter", "未知的检索参数")
	}
	return s.Indexer.Compile(typ, params)
}

// testErrorFiles: a resource that cannot be rendered and a type whose
// _typeFilter fails at run time are left out and reported in error files
// (NDJSON OperationOutcomes, listed under error); the rest is exported and
// the job completes.
func testErrorFiles(t *testing.T, b backend) {
	e := newEnv(t, b, setup{
		pol: func(p fhir.Policy) fhir.Policy { return unrenderable{Policy: p, typ: "Patient", id: "r3"} },
		idx: func(i export.Indexer) export.Indexer { return &staleSearch{Indexer: i, typ: "Procedure"} },
	})
	q := "_type=Patient,Procedure,AdverseEvent&_typeFilter=" + url.QueryEscape("Procedure?status=completed")
	m := e.poll("h2", e.kickoff("h2", "/$export?"+q))
	got := e.download("h2", m, "output")
	if g := types(got); !slices.Equal([]string{"AdverseEvent", "Patient"}, g) {
		t.Errorf("output types: want AdverseEvent, Patient, got %v", g)
	}
	if g := ids(got["Patient"]); !slices.Equal([]string{"r2", "r4"}, g) {
		t.Errorf("Patients: want r2, r4 (r3 failed), got %v", g)
	}
	if errs, _ := m["error"].([]any); len(errs) != 2 {
		t.Fatalf("error: want two files (Patient, Procedure), got %v", m["error"])
	}
	outcomes := e.download("h2", m, "error")["OperationOutcome"]
	var texts []string
	for _, o := range outcomes {
		b, _ := json.Marshal(o)
		texts = append(texts, string(b))
		if is, _ := o["issue"].([]any); len(is) == 0 {
			t.Errorf("an OperationOutcome without issues: %s", b)
		}
	}
	all := strings.Join(texts, "\n")
	if len(outcomes) != 2 || !strings.Contains(all, "Patient/r3") || !strings.Contains(all, "type Procedure") {
		t.Errorf("error files: want one outcome for Patient/r3 and one for the Procedures, got\n%s", all)
	}
}
