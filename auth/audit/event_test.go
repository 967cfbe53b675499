package audit

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var (
	testServer = Server{BaseURL: "https://cmts.example.org/fhir"}
	testTime   = time.Date(2026, 11, 30, 8, 15, 30, 123456789, time.FixedZone("CST", 8*3600))

	clinician = &fhir.Principal{Tenant: "hospital-a", TenantKind: fhir.TenantHospital, Subject: "u-1029",
		Issuer: "https://idp.hospital-a.example/realms/cmts", ClientID: "clinic-app",
		Roles: []fhir.Role{fhir.RoleClinician}}
	ehr = &fhir.Principal{Tenant: "hospital-a", TenantKind: fhir.TenantHospital, Subject: "ehr",
		Issuer: "https://idp.hospital-a.example/realms/cmts", ClientID: "ehr", Roles: []fhir.Role{fhir.RoleSystem}}
	patientApp = &fhir.Principal{Tenant: "hospital-b", TenantKind: fhir.TenantHospital, Subject: "p-7",
		Issuer: "https://idp.nhc.example", ClientID: "smart-app", Roles: []fhir.Role{fhir.RoleClinician}, Patient: "p-7"}
	regulator = &fhir.Principal{Tenant: "nhc", TenantKind: fhir.TenantAuthority, Subject: "inspector-3",
		Issuer: "https://idp.nhc.example", ClientID: "nhc-portal", Roles: []fhir.Role{fhir.RoleRegulator, fhir.RoleAdmin}}
	bankStaff = &fhir.Principal{Tenant: "bank-xa", TenantKind: fhir.TenantBank, Subject: "lab-2",
		Issuer: "https://idp.nhc.example", ClientID: "bank-lims", Roles: []fhir.Role{fhir.RoleBankStaff}}
)

// goldenRecords are the records of testdata/<name>.json.
var goldenRecords = map[string]Record{
	"read": {Interaction: Read, Principal: clinician, Remote: "10.1.2.3", RequestID: "req-8f2c", Time: testTime,
		Status: 200, Type: "Procedure", ID: "wmt-17", Version: "3"},
	"read-patient-context": {Interaction: Read, Principal: patientApp, Remote: "2001:db8::7", Time: testTime,
		Status: 200, Type: "Patient", ID: "p-7", Version: "1"},
	"vread-not-found": {Interaction: VRead, Principal: clinician, Remote: "10.1.2.3", Time: testTime,
		Status: 404, Type: "Observation", ID: "o-1", Version: "9"},
	"search-type": {Interaction: SearchType, Principal: regulator, Remote: "10.9.9.9", Time: testTime, Status: 200,
		Type: "Patient", Query: "identifier=http%3A%2F%2Ffmtbank.org%2Ffhir%2Fsid%2Frecipient-code%7CR-00042&name=Zhang%20Wei&_include=Patient:general-practitioner&_count=20"},
	"search-system": {Interaction: SearchSystem, Principal: regulator, Time: testTime, Status: 200,
		Query: "_type=Patient,Observation&_lastUpdated=ge2026-01-01"},
	"search-compartment": {Interaction: SearchType, Principal: clinician, Time: testTime, Status: 200,
		Type: "Observation", Query: "subject=Patient/r-5&code=http://loinc.org|8310-5", Patients: []string{"r-5"}},
	"create": {Interaction: Create, Principal: ehr, Remote: "10.1.2.4", Time: testTime, Status: 201,
		Type: "Procedure", ID: "0af3", Version: "1"},
	"update-creates": {Interaction: Update, Principal: bankStaff, Remote: "10.7.0.1", Time: testTime, Status: 201,
		Type: "Specimen", ID: "lot-2026-0412-01", Version: "1"},
	"patch": {Interaction: Patch, Principal: bankStaff, Remote: "10.7.0.1", Time: testTime, Status: 200,
		Type: "Specimen", ID: "lot-2026-0412-01", Version: "2"},
	"conditional-update-failed": {Interaction: Update, Principal: ehr, Remote: "10.1.2.4", Time: testTime, Status: 412,
		Type: "Patient", Query: "identifier=http://fmtbank.org/fhir/sid/recipient-code|R-00042"},
	"delete": {Interaction: Delete, Principal: ehr, Remote: "10.1.2.4", Time: testTime, Status: 204,
		Type: "Observation", ID: "o-1", Version: "4"},
	"history-instance": {Interaction: HistoryInstance, Principal: clinician, Time: testTime, Status: 200,
		Type: "Procedure", ID: "wmt-17", Query: "_count=10&_since=2026-01-01"},
	"history-system": {Interaction: HistorySystem, Principal: regulator, Time: testTime, Status: 200},
	"operation": {Interaction: Operation, Principal: regulator, Time: testTime, Status: 200,
		Type: "Specimen", ID: "lot-9", Operation: "$trace", Query: "depth=2"},
	"transaction":  {Interaction: Transaction, Principal: ehr, Remote: "10.1.2.4", Time: testTime, Status: 200},
	"capabilities": {Interaction: Capabilities, Remote: "127.0.0.1", Time: testTime, Status: 200},
	"unauthenticated": {Interaction: SearchType, Remote: "203.0.113.5", RequestID: "bad id with spaces", Time: testTime,
		Status: 401, Type: "Patient", Query: "name=Li%20Na&%E6%9D%8E%E5%A8%9C=x"},
	"unavailable": {Interaction: Read, Principal: clinician, Time: testTime, Status: 503, Type: "Patient", ID: "r-5"},
}

// TestEventGolden compares each record's AuditEvent with
// testdata/<name>.json (go test ./auth/audit -update rewrites them), and
// parses it with the R4 codec, so every golden file is valid R4.
func TestEventGolden(t *testing.T) {
	t.Parallel()
	codec, err := fhir.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range goldenRecords {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := json.MarshalIndent(Event(r, testServer), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata", name+".json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if _, err := codec.Parse(got); err != nil {
				t.Errorf("not valid R4: %v", err)
			}
		})
	}
}

// TestGoldenFilesUsed: no golden file is left without its record.
func TestGoldenFilesUsed(t *testing.T) {
	if *update {
		t.Skip("the golden files are being rewritten")
	}
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, ok := goldenRecords[strings.TrimSuffix(filepath.Base(f), ".json")]; !ok {
			t.Errorf("%s has no record in goldenRecords", f)
		}
	}
	if len(files) != len(goldenRecords) {
		t.Errorf("%d golden files for %d records", len(files), len(goldenRecords))
	}
}

// TestNoValues: no parameter value, nor any name or text a client sent
// outside the parameter-name form, reaches an event.
func TestNoValues(t *testing.T) {
	t.Parallel()
	secrets := []string{"Zhang", "Wei", "R-00042", "8310-5", "Li", "李娜", "ge2026", "bad id"}
	for name, r := range goldenRecords {
		b, err := json.Marshal(Event(r, testServer))
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		// The queries are base64: look inside them too.
		var ev AuditEvent
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatal(err)
		}
		for _, e := range ev.Entity {
			q, err := base64.StdEncoding.DecodeString(e.Query)
			if err != nil {
				t.Fatalf("%s: query not base64: %v", name, err)
			}
			text += " " + string(q)
		}
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s: the event holds %q:\n%s", name, s, text)
			}
		}
	}
}

func TestParamNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query string
		want  []string
	}{
		{"", nil},
		{"name=Zhang&name=Wei", []string{"name", "name"}},
		{"subject:Patient.name=x&_has:Observation:patient:code=1234", []string{"subject:Patient.name", "_has:Observation:patient:code"}},
		{"code%3Atext=fever", []string{"code:text"}},
		{"_summary", []string{"_summary"}},
		{"Zhang%20Wei=1&=2&%ZZ=3&a&&", []string{"?", "?", "?", "a"}},
		{"%E6%9D%8E=x", []string{"?"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, ParamNames(tt.query)); diff != "" {
			t.Errorf("ParamNames(%q) (-want +got):\n%s", tt.query, diff)
		}
	}
}

func TestOutcomeAndAction(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		i      Interaction
		status int
		action string
		out    string
	}{
		{Read, 200, "R", "0"}, {VRead, 304, "R", "0"}, {Create, 201, "C", "0"}, {Create, 400, "C", "4"},
		{Update, 201, "C", "0"}, {Update, 200, "U", "0"}, {Patch, 422, "U", "4"}, {Delete, 204, "D", "0"},
		{SearchType, 403, "E", "4"}, {HistoryType, 500, "E", "8"}, {Operation, 503, "E", "12"},
		{HistoryInstance, 410, "R", "4"}, {Capabilities, 200, "R", "0"}, {Transaction, 409, "E", "4"},
	} {
		if a, o := Action(tt.i, tt.status), Outcome(tt.status); a != tt.action || o != tt.out {
			t.Errorf("%s %d: action %s outcome %s, want %s %s", tt.i, tt.status, a, o, tt.action, tt.out)
		}
	}
}

// pretty is a JSON document indented, for messages.
func pretty(b []byte) string {
	var out bytes.Buffer
	if json.Indent(&out, b, "", "  ") != nil {
		return string(b)
	}
	return out.String()
}
