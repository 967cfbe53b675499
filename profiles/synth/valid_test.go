package synth_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/search"
	"github.com/fmtbank/cmts/profiles"
	"github.com/fmtbank/cmts/profiles/synth"
	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/sqlite"
)

// validatingStore checks every write as the REST API does before storing
// it (the R4 codec, then the guide's validator against the store as it
// stands: earlier batches written, this one not yet), and fails the test
// on any error issue.
type validatingStore struct {
	t     *testing.T
	st    store.Store
	codec *fhir.Codec
	svc   *profiles.Service
	n     int
}

func (v *validatingStore) Transact(ctx context.Context, conds []store.Query, decide func([][]*store.Version) ([]store.Write, error)) error {
	ws, err := decide(nil)
	if err != nil {
		return err
	}
	for _, w := range ws {
		ver := w.Version
		where := fmt.Sprintf("%s/%s v%d (%s)", ver.Type, ver.ID, ver.VersionID, ver.Tenant)
		if _, err := v.codec.Parse(ver.Resource); err != nil {
			v.t.Errorf("%s: not valid R4: %v\n%s", where, err, ver.Resource)
			continue
		}
		p := &fhir.Principal{Tenant: ver.Tenant, Subject: "synth-test", Roles: []fhir.Role{fhir.RoleSystem}}
		issues, err := v.svc.CheckWrite(ctx, p, ver.Type, ver.Resource)
		if err != nil {
			return err
		}
		for _, is := range issues {
			if is.Severity == "" || is.Severity == "error" || is.Severity == "fatal" {
				v.t.Errorf("%s: %s at %s\n%s", where, is.Message.EN, strings.Join(is.Expression, ", "), ver.Resource)
			}
		}
		if !strings.Contains(string(ver.Resource), `"profile":["http://fmtbank.org/fhir/StructureDefinition/`) && ver.Type != "Organization" {
			v.t.Errorf("%s claims no profile of the guide", where)
		}
		v.n++
	}
	return v.st.Transact(ctx, conds, func([][]*store.Version) ([]store.Write, error) { return ws, nil })
}

func guide(t testing.TB, st store.Store) (*search.Engine, *profiles.Service) {
	t.Helper()
	sps, err := profiles.SearchParameters()
	if err != nil {
		t.Fatal(err)
	}
	engine, err := search.New(sps...)
	if err != nil {
		t.Fatal(err)
	}
	defs, err := profiles.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	if st == nil {
		return engine, nil
	}
	svc, err := profiles.NewService(defs, st, true)
	if err != nil {
		t.Fatal(err)
	}
	return engine, svc
}

// TestEveryResourceValid writes a small registry through the validator:
// every version, in write order, must be valid R4 and valid to the
// profile it claims, as a REST write would be checked (with
// --require-profiles).
func TestEveryResourceValid(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	engine, svc := guide(t, st)
	codec, err := fhir.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	reg, err := synth.Generate(synth.Options{Patients: 150, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	vs := &validatingStore{t: t, st: st, codec: codec, svc: svc}
	if err := reg.Write(ctx, synth.WriteOptions{Store: vs, Indexer: engine, Batch: 25}); err != nil {
		t.Fatal(err)
	}
	if vs.n != reg.Len() {
		t.Errorf("validated %d versions, the registry has %d", vs.n, reg.Len())
	}
	n, err := st.Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := reg.Truth().Resources; n != sum(want) {
		t.Errorf("the store holds %d resources, the truth says %d (%v)", n, sum(want), want)
	}
	// A second run into the same store is refused, nothing half-written.
	if err := reg.Write(ctx, synth.WriteOptions{Store: st, Indexer: engine}); err == nil {
		t.Error("writing the registry twice into one store succeeded")
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
