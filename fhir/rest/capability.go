package rest

import (
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"
)

// capabilities answers /metadata with a CapabilityStatement built from the
// route table and the search registry, so it says exactly what this build does.
func (s *Server) capabilities(c *gin.Context) {
	cs := s.capabilityStatement(s.base(c))
	if sec := s.capabilitySecurity(c); sec != nil {
		cs["rest"].([]map[string]any)[0]["security"] = sec
	}
	body, err := json.Marshal(cs)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.writeJSON(c, http.StatusOK, body)
}

type csInteraction struct {
	Code string `json:"code"`
}

type csSearchParam struct {
	Name          string `json:"name"`
	Type          string `json:"type"`
	Documentation string `json:"documentation,omitempty"`
}

type csResource struct {
	Type              string          `json:"type"`
	Interaction       []csInteraction `json:"interaction"`
	Versioning        string          `json:"versioning"`
	ReadHistory       bool            `json:"readHistory"`
	UpdateCreate      bool            `json:"updateCreate"`
	ConditionalCreate bool            `json:"conditionalCreate"`
	ConditionalRead   string          `json:"conditionalRead"`
	ConditionalUpdate bool            `json:"conditionalUpdate"`
	ConditionalDelete string          `json:"conditionalDelete"`
	SearchParam       []csSearchParam `json:"searchParam,omitempty"`
	Operation         []csOperation   `json:"operation,omitempty"`
}

type csOperation struct {
	Name       string `json:"name"`
	Definition string `json:"definition"`
}

// The Bulk Data IG's operation definitions, named when Options.Export is set.
const bulkData = "http://hl7.org/fhir/uv/bulkdata/"

func (s *Server) capabilityStatement(base string) map[string]any {
	typeLevel, systemLevel := []csInteraction{}, []csInteraction{}
	seen := map[string]bool{}
	for _, r := range routeTable() {
		if r.interaction == "" || seen[r.interaction] {
			continue
		}
		seen[r.interaction] = true
		if r.level == "system" {
			systemLevel = append(systemLevel, csInteraction{r.interaction})
		} else {
			typeLevel = append(typeLevel, csInteraction{r.interaction})
		}
	}
	ops := s.servedOperations()
	var resources []csResource
	for _, t := range s.opts.Codec.ResourceTypes() {
		r := csResource{
			Type: t, Interaction: typeLevel, Versioning: "versioned-update", ReadHistory: true,
			UpdateCreate: true, ConditionalCreate: true, ConditionalRead: "not-supported",
			ConditionalUpdate: true, ConditionalDelete: "single",
		}
		switch {
		case s.opts.Export != nil && t == "Patient":
			r.Operation = []csOperation{{"export", bulkData + "OperationDefinition/patient-export"}}
		case s.opts.Export != nil && t == "Group":
			r.Operation = []csOperation{{"export", bulkData + "OperationDefinition/group-export"}}
		}
		r.Operation = append(r.Operation, ops.onType[t]...)
		for _, sp := range s.opts.Indexer.Params(t) {
			r.SearchParam = append(r.SearchParam, csSearchParam{Name: sp.Code, Type: string(sp.Type), Documentation: sp.Doc})
		}
		resources = append(resources, r)
	}
	version := s.opts.Version
	if version == "" {
		version = "dev"
	}
	rest := map[string]any{
		"mode":        "server",
		"resource":    resources,
		"interaction": systemLevel,
	}
	cs := map[string]any{
		"resourceType": "CapabilityStatement",
		"status":       "active",
		"date":         s.now().Format(time.RFC3339),
		"publisher":    "CMTS",
		"kind":         "instance",
		"software":     map[string]any{"name": "CMTS FHIR server", "version": version},
		"implementation": map[string]any{
			"description": "China Microbiota Transplantation System registry (FMT/WMT)",
			"url":         base,
		},
		"fhirVersion": "4.0.1",
		"format":      []string{"json"},
		"patchFormat": []string{mimeJSONPatch},
		"rest":        []map[string]any{rest},
	}
	var system []csOperation
	if s.opts.Export != nil {
		cs["instantiates"] = []string{bulkData + "CapabilityStatement/bulk-data"}
		system = append(system, csOperation{"export", bulkData + "OperationDefinition/export"})
	}
	if system = append(system, ops.system...); len(system) > 0 {
		rest["operation"] = system
	}
	return cs
}

// opDefinition is what the CapabilityStatement needs of an
// OperationDefinition the Conformance serves.
type opDefinition struct {
	URL, Code              string
	Resource               []string
	System, Type, Instance bool
}

// servedOps are the operations the CapabilityStatement lists, each citing
// the OperationDefinition the server serves for it: by resource type, and
// those at system level or on every type (rest.operation).
type servedOps struct {
	onType map[string][]csOperation
	system []csOperation
}

// servedOperations lists the OperationDefinitions the Conformance serves
// whose operation this build runs: the stored operations (Operations.Offers
// at a level the definition names), $validate with a Validator, and the
// terminology operations on the types the Conformance serves. $export is
// cited by the Bulk Data IG's own definitions (which ours are based on),
// as Bulk Data clients look for them.
func (s *Server) servedOperations() servedOps {
	out := servedOps{onType: map[string][]csOperation{}}
	conf := s.opts.Conformance
	if conf == nil {
		return out
	}
	bodies, err := conf.Search("OperationDefinition", nil)
	if err != nil {
		return out
	}
	for _, b := range bodies {
		var d opDefinition
		if json.Unmarshal(b, &d) != nil || d.Code == "" || d.Code == "export" {
			continue
		}
		op := csOperation{d.Code, d.URL}
		if slices.Contains(d.Resource, "Resource") {
			if d.Code == "validate" && s.opts.Validator != nil {
				out.system = append(out.system, op)
			}
			continue
		}
		if d.System && len(d.Resource) == 0 && s.opts.Operations != nil && s.opts.Operations.Offers("", "$"+d.Code, false) {
			out.system = append(out.system, op)
		}
		for _, t := range d.Resource {
			ran := conf.Serves(t) ||
				s.opts.Operations != nil && (d.Type && s.opts.Operations.Offers(t, "$"+d.Code, false) ||
					d.Instance && s.opts.Operations.Offers(t, "$"+d.Code, true))
			if ran {
				out.onType[t] = append(out.onType[t], op)
			}
		}
	}
	return out
}
