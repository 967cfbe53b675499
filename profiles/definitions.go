package profiles

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/fmtbank/cmts/fhir/fhirpath"
)

// Definitions is a set of StructureDefinitions (with snapshots) and the
// terminology their bindings name: what the Validator validates against.
// Load it fully, then share it: it is read-only afterwards.
type Definitions struct {
	byURL  map[string]*structure
	byType map[string]*structure // the base definition of each type
	// resourceTypes names the resource types whose definitions may not be
	// loaded (the embedded subset), for reference checks.
	resourceTypes map[string]bool
	// Terminology answers binding checks and the terminology operations.
	Terminology *Terminology
}

// NewDefinitions returns an empty set.
func NewDefinitions() *Definitions {
	return &Definitions{byURL: map[string]*structure{}, byType: map[string]*structure{}, resourceTypes: map[string]bool{}, Terminology: NewTerminology()}
}

// Embedded returns the definitions the server ships: the embedded R4
// subset (data types, the base resources the guide profiles, their
// terminology) and every resource of the WMT guide.
func Embedded() (*Definitions, error) {
	d := NewDefinitions()
	sds, term, err := r4Files()
	if err != nil {
		return nil, err
	}
	for _, b := range append(sds, term...) {
		if err := d.Add(b); err != nil {
			return nil, err
		}
	}
	types, err := r4ResourceTypes()
	if err != nil {
		return nil, err
	}
	for _, t := range types {
		d.resourceTypes[t] = true
	}
	guide, err := Guide()
	if err != nil {
		return nil, err
	}
	for _, r := range guide {
		if err := d.Add(r.JSON); err != nil {
			return nil, fmt.Errorf("profiles: %s/%s: %w", r.Type, r.ID, err)
		}
	}
	return d, nil
}

// Add loads one conformance resource: a StructureDefinition with a snapshot,
// or a CodeSystem, ValueSet or ConceptMap; other resources are ignored.
func (d *Definitions) Add(b []byte) error {
	var head struct {
		ResourceType string `json:"resourceType"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return err
	}
	if head.ResourceType != "StructureDefinition" {
		return d.Terminology.Add(b)
	}
	st, err := parseStructure(b)
	if err != nil {
		return err
	}
	if st == nil {
		return nil
	}
	d.byURL[st.url] = st
	if st.derivation != "constraint" && strings.HasPrefix(st.url, "http://hl7.org/fhir/StructureDefinition/") {
		d.byType[st.typ] = st
		if st.kind == "resource" {
			d.resourceTypes[st.typ] = true
		}
	}
	return nil
}

// Profile reports the type a StructureDefinition constrains, if loaded.
func (d *Definitions) Profile(url string) (typ string, ok bool) {
	st, ok := d.byURL[url]
	if !ok {
		return "", false
	}
	return st.typ, true
}

// structure is a StructureDefinition's snapshot as a tree of elements.
type structure struct {
	url, name, typ, kind, derivation string
	abstract                         bool
	root                             *element
}

// element is one ElementDefinition of a snapshot.
type element struct {
	id, path, name string // name: the last path segment, e.g. "value[x]"
	min            int
	max            int // -1: unbounded
	types          []typeRef
	contentRef     string
	ref            *element // the element contentRef names
	children       []*element
	slicing        *slicing
	slices         []*element
	sliceName      string
	fixed          any // decoded fixed[x] value, nil if none
	pattern        any
	binding        *bindingDef
	constraints    []*invariant
}

type typeRef struct {
	code           string
	profiles       []string
	targetProfiles []string
}

type slicing struct {
	discriminators []discriminator
	rules          string
}

type discriminator struct{ typ, path string }

type bindingDef struct{ strength, valueSet string }

type invariant struct {
	key, severity, human, source string
	expr                         *fhirpath.Expr // nil if the expression is beyond fhirpath
}

func (e *element) choice() bool { return strings.HasSuffix(e.name, "[x]") }

func parseStructure(b []byte) (*structure, error) {
	var sd struct {
		URL            string `json:"url"`
		Name           string `json:"name"`
		Type           string `json:"type"`
		Kind           string `json:"kind"`
		Abstract       bool   `json:"abstract"`
		Derivation     string `json:"derivation"`
		BaseDefinition string `json:"baseDefinition"`
		Snapshot       struct {
			Element []json.RawMessage `json:"element"`
		} `json:"snapshot"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&sd); err != nil {
		return nil, err
	}
	if len(sd.Snapshot.Element) == 0 || sd.Kind == "logical" {
		return nil, nil
	}
	st := &structure{url: sd.URL, name: sd.Name, typ: sd.Type, kind: sd.Kind, derivation: sd.Derivation, abstract: sd.Abstract}
	byID := map[string]*element{}
	for i, raw := range sd.Snapshot.Element {
		e, err := parseElement(raw, sd.URL)
		if err != nil {
			return nil, fmt.Errorf("%s element %d: %w", sd.URL, i, err)
		}
		if i == 0 {
			st.root = e
			byID[e.id] = e
			continue
		}
		byID[e.id] = e
		dot := strings.LastIndex(e.id, ".")
		if dot < 0 {
			return nil, fmt.Errorf("%s: element id %q has no parent", sd.URL, e.id)
		}
		parentID, last := e.id[:dot], e.id[dot+1:]
		parent := byID[parentID]
		if parent == nil {
			// A few R4 profiles (e.g. catalog) have ids that name a
			// slice of an element they do not list; their elements
			// cannot be placed and are left out.
			continue
		}
		if name, _, sliced := strings.Cut(last, ":"); sliced {
			base := byID[parentID+"."+name]
			if base == nil {
				delete(byID, e.id)
				continue
			}
			e.name = name
			base.slices = append(base.slices, e)
			continue
		}
		e.name = last
		parent.children = append(parent.children, e)
	}
	// contentReference: "#Questionnaire.item" (an id, in R4 also the path).
	var link func(e *element)
	link = func(e *element) {
		if e.contentRef != "" {
			e.ref = byID[strings.TrimPrefix(e.contentRef[strings.Index(e.contentRef, "#")+1:], "")]
		}
		for _, c := range e.children {
			link(c)
		}
		for _, s := range e.slices {
			link(s)
		}
	}
	link(st.root)
	return st, nil
}

func parseElement(raw json.RawMessage, source string) (*element, error) {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	e := &element{max: -1}
	e.id, _ = m["id"].(string)
	e.path, _ = m["path"].(string)
	if e.id == "" {
		e.id = e.path
	}
	e.sliceName, _ = m["sliceName"].(string)
	if n, ok := m["min"].(json.Number); ok {
		v, _ := n.Int64()
		e.min = int(v)
	}
	if s, ok := m["max"].(string); ok && s != "*" {
		v, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("max %q", s)
		}
		e.max = v
	}
	e.contentRef, _ = m["contentReference"].(string)
	if ts, ok := m["type"].([]any); ok {
		for _, t := range ts {
			t := t.(map[string]any)
			tr := typeRef{}
			tr.code, _ = t["code"].(string)
			tr.profiles = stringList(t["profile"])
			tr.targetProfiles = stringList(t["targetProfile"])
			e.types = append(e.types, tr)
		}
	}
	if s, ok := m["slicing"].(map[string]any); ok {
		sl := &slicing{}
		sl.rules, _ = s["rules"].(string)
		if ds, ok := s["discriminator"].([]any); ok {
			for _, d := range ds {
				d := d.(map[string]any)
				t, _ := d["type"].(string)
				p, _ := d["path"].(string)
				sl.discriminators = append(sl.discriminators, discriminator{t, p})
			}
		}
		e.slicing = sl
	}
	if b, ok := m["binding"].(map[string]any); ok {
		bd := &bindingDef{}
		bd.strength, _ = b["strength"].(string)
		bd.valueSet, _ = b["valueSet"].(string)
		if bd.valueSet != "" {
			e.binding = bd
		}
	}
	for k, v := range m {
		switch {
		case strings.HasPrefix(k, "fixed"):
			e.fixed = v
		case strings.HasPrefix(k, "pattern"):
			e.pattern = v
		}
	}
	if cs, ok := m["constraint"].([]any); ok {
		for _, c := range cs {
			c := c.(map[string]any)
			inv := &invariant{}
			inv.key, _ = c["key"].(string)
			inv.severity, _ = c["severity"].(string)
			inv.human, _ = c["human"].(string)
			inv.source, _ = c["source"].(string)
			src, _ := c["expression"].(string)
			if src == "" {
				continue
			}
			if x, err := fhirpath.Parse(src); err == nil {
				inv.expr = x
			}
			e.constraints = append(e.constraints, inv)
		}
	}
	return e, nil
}

func stringList(v any) []string {
	arr, _ := v.([]any)
	var out []string
	for _, x := range arr {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
