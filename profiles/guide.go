package profiles

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

//go:embed ig/*.json r4/*.json
var embedded embed.FS

// Canonical is the canonical base of every conformance resource the guide
// defines.
const Canonical = "http://fmtbank.org/fhir"

// Resource is one conformance resource of the guide, as served.
type Resource struct {
	Type string // resourceType
	ID   string // the last segment of URL
	URL  string
	Name string
	// For a StructureDefinition: the type it constrains and its base
	// definition; for a SearchParameter: its base resource types.
	DefinedType string
	Base        []string
	// JSON is the resource as stored in the guide.
	JSON []byte
}

// Guide returns the guide's conformance resources, sorted by type and id.
// The embedded files are checked by the package's tests, so an error here
// means a broken build.
func Guide() ([]Resource, error) {
	files, err := fs.Glob(embedded, "ig/*.json")
	if err != nil {
		return nil, err
	}
	var out []Resource
	for _, f := range files {
		b, err := embedded.ReadFile(f)
		if err != nil {
			return nil, err
		}
		r, err := describe(b)
		if err != nil {
			return nil, fmt.Errorf("profiles: %s: %w", path.Base(f), err)
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

func describe(b []byte) (Resource, error) {
	var head struct {
		ResourceType   string          `json:"resourceType"`
		ID             string          `json:"id"`
		URL            string          `json:"url"`
		Name           string          `json:"name"`
		Type           json.RawMessage `json:"type"` // a string on a StructureDefinition
		BaseDefinition string          `json:"baseDefinition"`
		Base           json.RawMessage `json:"base"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return Resource{}, err
	}
	r := Resource{Type: head.ResourceType, ID: head.ID, URL: head.URL, Name: head.Name, JSON: b}
	switch head.ResourceType {
	case "StructureDefinition":
		if err := json.Unmarshal(head.Type, &r.DefinedType); err != nil {
			return Resource{}, fmt.Errorf("type: %w", err)
		}
		r.Base = []string{head.BaseDefinition}
	case "SearchParameter":
		if err := json.Unmarshal(head.Base, &r.Base); err != nil {
			return Resource{}, fmt.Errorf("base: %w", err)
		}
	}
	if r.ID == "" || !strings.HasSuffix(r.URL, "/"+r.ID) {
		return Resource{}, fmt.Errorf("id %q is not the last segment of url %q", r.ID, r.URL)
	}
	return r, nil
}

// r4ResourceTypes lists the R4 resource type names.
func r4ResourceTypes() ([]string, error) {
	b, err := embedded.ReadFile("r4/resourcetypes.json")
	if err != nil {
		return nil, err
	}
	var out []string
	return out, json.Unmarshal(b, &out)
}

// r4Files returns the embedded R4 subset: trimmed StructureDefinitions of
// the data types and of the resources the guide profiles, and the code
// systems and value sets of their required and extensible bindings.
func r4Files() (sds, terminology []json.RawMessage, err error) {
	for _, f := range []struct {
		name string
		into *[]json.RawMessage
	}{{"r4/structuredefinitions.json", &sds}, {"r4/terminology.json", &terminology}} {
		b, err := embedded.ReadFile(f.name)
		if err != nil {
			return nil, nil, err
		}
		if err := json.Unmarshal(b, f.into); err != nil {
			return nil, nil, fmt.Errorf("profiles: %s: %w", f.name, err)
		}
	}
	return sds, terminology, nil
}
