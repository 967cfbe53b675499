// Command gen writes fhir/search/params_gen.go, the registry of the FHIR R4
// search parameters, from the SearchParameter and StructureDefinition
// resources of the npm package hl7.fhir.r4.examples.
//
// Usage (from fhir/search, as go generate runs it):
//
//	go run ./internal/gen -out params_gen.go                 # package from the test cache (runs npm ci once)
//	go run ./internal/gen -examples DIR -out params_gen.go   # package already unpacked in DIR
//
// The output depends only on the package contents, so running it twice
// gives the same file; a test in this folder checks that the committed
// file is what the generator makes from the pinned package.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/fmtbank/cmts/fhir/fhirtest"
)

func main() { fhirtest.GeneratorMain("params_gen.go", generate) }

// searchParameter is the part of an R4 SearchParameter the registry keeps.
type searchParameter struct {
	ID          string   `json:"id"`
	URL         string   `json:"url"`
	Code        string   `json:"code"`
	Base        []string `json:"base"`
	Type        string   `json:"type"`
	Description string   `json:"description"`
	Expression  string   `json:"expression"`
	Target      []string `json:"target"`
	Modifier    []string `json:"modifier"`
	Comparator  []string `json:"comparator"`
	Component   []struct {
		Definition string `json:"definition"`
		Expression string `json:"expression"`
	} `json:"component"`
}

// excluded lists SearchParameters of the package that are examples, not
// part of the R4 specification.
var excluded = map[string]string{
	"example":           "an example redefinition of _id",
	"example-reference": "an example redefinition of Condition.subject",
	"example-extension": "an example whose expression names DocumentReference but whose base is Patient",
}

// componentFixes corrects errata in the R4 composite definitions, keyed by
// SearchParameter id: the component definitions listed in the order the
// expressions need. DocumentReference-relationship pairs the expression
// "code" with the reference parameter relatesto and "target" with the token
// parameter relation; swapped here so each component has the type of what
// its expression yields (relationship=replaces$DocumentReference/123).
var componentFixes = map[string][]string{
	"DocumentReference-relationship": {
		"http://hl7.org/fhir/SearchParameter/DocumentReference-relation",
		"http://hl7.org/fhir/SearchParameter/DocumentReference-relatesto",
	},
}

// expressionFixes corrects errata in R4 component expressions, keyed by
// SearchParameter id and the expression as published.
// Observation-code-value-date names the System type DateTime, which no FHIR
// dateTime value is an instance of (fixed as ofType(dateTime) in R5).
var expressionFixes = map[string]map[string]string{
	"Observation-code-value-date": {"value.as(DateTime) | value.as(Period)": "value.as(dateTime) | value.as(Period)"},
}

// modifiers are the modifiers the server supports for each parameter type
// (the reference :[type] modifier is implied by the targets).
var modifiers = map[string][]string{
	"string":    {"missing", "exact", "contains"},
	"token":     {"missing", "text", "not", "of-type"},
	"reference": {"missing", "identifier"},
	"uri":       {"missing", "above", "below"},
	"date":      {"missing"},
	"number":    {"missing"},
	"quantity":  {"missing"},
	"composite": {"missing"},
}

// comparators are the R4 prefixes, for types that take them when the
// definition lists none.
var comparators = []string{"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"}

type resourceType struct{ Name, Base string }

// structureDefinition is the part of an R4 StructureDefinition the
// registry keeps.
type structureDefinition struct {
	Type           string `json:"type"`
	BaseDefinition string `json:"baseDefinition"`
}

// generate returns params_gen.go, before gofmt, from the examples package in
// dir.
func generate(dir string) ([]byte, error) {
	var types []resourceType
	err := fhirtest.ResourceDefinitions(dir, func(_ string, sd structureDefinition) error {
		types = append(types, resourceType{sd.Type, sd.BaseDefinition[strings.LastIndex(sd.BaseDefinition, "/")+1:]})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(types, func(i, j int) bool { return types[i].Name < types[j].Name })
	isType := map[string]bool{"Resource": true, "DomainResource": true}
	for _, t := range types {
		isType[t.Name] = true
	}

	files, err := filepath.Glob(filepath.Join(dir, "SearchParameter-*.json"))
	if err != nil {
		return nil, err
	}
	byURL := map[string]*searchParameter{}
	var sps []*searchParameter
	for _, f := range files {
		sp := new(searchParameter)
		if err := fhirtest.ReadJSON(f, sp); err != nil {
			return nil, err
		}
		if _, ok := excluded[sp.ID]; ok {
			continue
		}
		byURL[sp.URL] = sp
		if len(sp.Base) == 0 {
			// Definitions in extension packs without a base (and without
			// an expression) cannot be applied to any resource.
			continue
		}
		sps = append(sps, sp)
	}
	sort.Slice(sps, func(i, j int) bool { return sps[i].ID < sps[j].ID })
	seen := map[string]string{}
	for _, sp := range sps {
		for _, b := range sp.Base {
			if !isType[b] {
				return nil, fmt.Errorf("%s: unknown base %q", sp.ID, b)
			}
			if other, dup := seen[b+"."+sp.Code]; dup {
				return nil, fmt.Errorf("%s and %s both define %s on %s", other, sp.ID, sp.Code, b)
			}
			seen[b+"."+sp.Code] = sp.ID
		}
	}

	var buf bytes.Buffer
	buf.WriteString("// Code generated by fhir/search/internal/gen from hl7.fhir.r4.examples; DO NOT EDIT.\n\npackage search\n\n")
	buf.WriteString("// r4ResourceTypes are the concrete R4 resource types and the type each\n// specialises (DomainResource or Resource).\n")
	buf.WriteString("var r4ResourceTypes = []resourceTypeDef{\n")
	for _, t := range types {
		fmt.Fprintf(&buf, "\t{%q, %q},\n", t.Name, t.Base)
	}
	buf.WriteString("}\n\n")
	buf.WriteString("// r4Params are the R4 SearchParameter definitions, sorted by id.\nvar r4Params = []paramDef{\n")
	for _, sp := range sps {
		if err := writeParam(&buf, sp, byURL, isType); err != nil {
			return nil, err
		}
	}
	buf.WriteString("}\n")
	return buf.Bytes(), nil
}

func writeParam(buf *bytes.Buffer, sp *searchParameter, byURL map[string]*searchParameter, isType map[string]bool) error {
	fmt.Fprintf(buf, "\t{\n\t\tID: %q,\n\t\tURL: %q,\n\t\tCode: %q,\n\t\tType: %q,\n", sp.ID, sp.URL, sp.Code, sp.Type)
	if sp.Expression != "" {
		fmt.Fprintf(buf, "\t\tExpression: %q,\n", sp.Expression)
	}
	branches, err := splitUnion(sp.Expression)
	if err != nil {
		return fmt.Errorf("%s: %w", sp.ID, err)
	}
	docs := baseDocs(sp.Description)
	buf.WriteString("\t\tBases: []baseDef{\n")
	for _, b := range sp.Base {
		var exprs []string
		for _, br := range branches {
			lead := leadingName(br)
			if !isType[lead] || lead == b || lead == "Resource" || lead == "DomainResource" {
				exprs = append(exprs, br)
			}
		}
		if sp.Expression != "" && len(exprs) == 0 {
			return fmt.Errorf("%s: no part of the expression applies to base %s", sp.ID, b)
		}
		doc, ok := docs[b]
		if !ok {
			doc = firstLine(sp.Description)
		}
		fmt.Fprintf(buf, "\t\t\t{Type: %q, Doc: %q", b, doc)
		if len(exprs) > 0 {
			fmt.Fprintf(buf, ", Expressions: %s", stringSlice(exprs))
		}
		if t := resolvedTargets(exprs, sp.Target); t != nil {
			fmt.Fprintf(buf, ", Targets: %s", stringSlice(t))
		}
		buf.WriteString("},\n")
	}
	buf.WriteString("\t\t},\n")
	if len(sp.Target) > 0 {
		t := append([]string(nil), sp.Target...)
		sort.Strings(t)
		fmt.Fprintf(buf, "\t\tTargets: %s,\n", stringSlice(t))
	}
	if len(sp.Component) > 0 {
		defs := make([]string, len(sp.Component))
		for i, c := range sp.Component {
			defs[i] = c.Definition
		}
		if fix, ok := componentFixes[sp.ID]; ok {
			defs = fix
		}
		buf.WriteString("\t\tComponents: []componentDef{\n")
		for i, c := range sp.Component {
			def := byURL[defs[i]]
			if def == nil {
				return fmt.Errorf("%s: component definition %s not found", sp.ID, defs[i])
			}
			expr := c.Expression
			if fixed, ok := expressionFixes[sp.ID][expr]; ok {
				expr = fixed
			}
			fmt.Fprintf(buf, "\t\t\t{Definition: %q, Code: %q, Type: %q, Expression: %q},\n", defs[i], def.Code, def.Type, expr)
		}
		buf.WriteString("\t\t},\n")
	}
	mods := append([]string(nil), modifiers[sp.Type]...)
	for _, m := range sp.Modifier {
		if !contains(mods, m) {
			mods = append(mods, m)
		}
	}
	if len(mods) > 0 {
		fmt.Fprintf(buf, "\t\tModifiers: %s,\n", stringSlice(mods))
	}
	comps := sp.Comparator
	if len(comps) == 0 && (sp.Type == "number" || sp.Type == "date" || sp.Type == "quantity") {
		comps = comparators
	}
	if len(comps) > 0 {
		fmt.Fprintf(buf, "\t\tComparators: %s,\n", stringSlice(comps))
	}
	buf.WriteString("\t},\n")
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func stringSlice(s []string) string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = strconv.Quote(x)
	}
	return "[]string{" + strings.Join(q, ", ") + "}"
}

// splitUnion splits a FHIRPath expression at its top-level "|" operators,
// so that each resource type evaluates only the parts that start with its
// own name.
func splitUnion(expr string) ([]string, error) {
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(expr); i++ {
		switch c := expr[i]; c {
		case '\'', '`', '"':
			j := i + 1
			for j < len(expr) && expr[j] != c {
				if expr[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(expr) {
				return nil, errors.New("unterminated quote")
			}
			i = j
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
		case '|':
			if depth == 0 {
				parts = append(parts, strings.TrimSpace(expr[start:i]))
				start = i + 1
			}
		}
	}
	if depth != 0 {
		return nil, errors.New("unbalanced brackets")
	}
	if last := strings.TrimSpace(expr[start:]); last != "" {
		parts = append(parts, last)
	}
	return parts, nil
}

var resolveRE = regexp.MustCompile(`\.where\(resolve\(\) is ([A-Za-z]+)\)$`)

// resolvedTargets narrows the targets of a reference parameter on one base
// when each of its expressions keeps only references to some types, as
// Observation.subject.where(resolve() is Patient) does for the patient
// parameter (whose definition, shared by many bases, targets Patient and
// Group). It returns nil when the parameter's own targets apply.
func resolvedTargets(exprs, targets []string) []string {
	if len(exprs) == 0 || len(targets) == 0 {
		return nil
	}
	seen := map[string]bool{}
	for _, e := range exprs {
		m := resolveRE.FindStringSubmatch(e)
		if m == nil || !contains(targets, m[1]) {
			return nil
		}
		seen[m[1]] = true
	}
	if len(seen) == len(targets) {
		return nil
	}
	var out []string
	for t := range seen {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

var leadingRE = regexp.MustCompile(`^[\s(]*([A-Za-z_][A-Za-z0-9_]*)`)

// leadingName is the first identifier of an expression (after opening
// parentheses): the resource type a path starts from, or an element name.
func leadingName(expr string) string {
	if m := leadingRE.FindStringSubmatch(expr); m != nil {
		return m[1]
	}
	return ""
}

var docLineRE = regexp.MustCompile(`^\* \[([A-Za-z]+)\]\([^)]*\): (.*)$`)

// baseDocs reads the per-type lines of a "Multiple Resources:" description.
func baseDocs(desc string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(strings.ReplaceAll(desc, "\r\n", "\n"), "\n") {
		if g := docLineRE.FindStringSubmatch(strings.TrimSpace(line)); g != nil {
			m[g[1]] = strings.TrimSpace(g[2])
		}
	}
	return m
}

func firstLine(s string) string {
	s = strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n"))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}
