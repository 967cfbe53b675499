package fhir

import (
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseScope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in     string
		want   Scope
		wantOK bool
	}{
		{"user/Patient.read", Scope{Context: ScopeUser, ResourceType: "Patient", Permissions: "rs"}, true},
		{"user/*.write", Scope{Context: ScopeUser, ResourceType: "*", Permissions: "cud"}, true},
		{"system/*.*", Scope{Context: ScopeSystem, ResourceType: "*", Permissions: "cruds"}, true},
		{"patient/Observation.rs", Scope{Context: ScopePatient, ResourceType: "Observation", Permissions: "rs"}, true},
		{"patient/*.cruds", Scope{Context: ScopePatient, ResourceType: "*", Permissions: "cruds"}, true},
		{"user/Condition.d", Scope{Context: ScopeUser, ResourceType: "Condition", Permissions: "d"}, true},
		{"patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
			Scope{Context: ScopePatient, ResourceType: "Observation", Permissions: "rs",
				Params: url.Values{"category": {"http://terminology.hl7.org/CodeSystem/observation-category|laboratory"}}}, true},
		{"system/Specimen.rs?type=stool&status=available",
			Scope{Context: ScopeSystem, ResourceType: "Specimen", Permissions: "rs",
				Params: url.Values{"type": {"stool"}, "status": {"available"}}}, true},
		{"patient/Observation.sr", Scope{}, false},  // v2 letters out of order
		{"patient/Observation.rr", Scope{}, false},  // repeated
		{"patient/Observation.x", Scope{}, false},   // unknown permission
		{"patient/Observation.", Scope{}, false},    // empty permission
		{"patient/Observation", Scope{}, false},     // no permission
		{"patient/observation.rs", Scope{}, false},  // not a type name
		{"patient/Observation.rs?", Scope{}, false}, // empty narrowing
		{"doctor/Observation.rs", Scope{}, false},   // unknown context
		{"openid", Scope{}, false},                  // not a resource scope
		{"launch/patient", Scope{}, false},          // a launch context request
		{"fhirUser", Scope{}, false},                //
		{"", Scope{}, false},                        //
		{"user/Ob-servation.read", Scope{}, false},  // bad type name
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := ParseScope(tt.in)
			if ok != tt.wantOK {
				t.Fatalf("ParseScope(%q) ok = %v, want %v", tt.in, ok, tt.wantOK)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseScope(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestScopeAllows(t *testing.T) {
	t.Parallel()
	tests := []struct {
		scope string
		i     Interaction
		typ   string
		want  bool
	}{
		{"user/Patient.read", Read, "Patient", true},
		{"user/Patient.read", Search, "Patient", true},
		{"user/Patient.read", Create, "Patient", false},
		{"user/Patient.read", Read, "Observation", false},
		{"user/*.write", Update, "Observation", true},
		{"user/*.write", Read, "Observation", false},
		{"system/*.*", Delete, "Specimen", true},
		{"patient/Observation.cu", Create, "Observation", true},
		{"patient/Observation.cu", Delete, "Observation", false},
	}
	for _, tt := range tests {
		sc, ok := ParseScope(tt.scope)
		if !ok {
			t.Fatalf("ParseScope(%q) failed", tt.scope)
		}
		if got := sc.Allows(tt.i, tt.typ); got != tt.want {
			t.Errorf("%q.Allows(%c, %s) = %v, want %v", tt.scope, tt.i, tt.typ, got, tt.want)
		}
	}
}
