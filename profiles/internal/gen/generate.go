package main

import (
	"bytes"

	"encoding/json"
	"fmt"
	"github.com/fmtbank/cmts/fhir/fhirtest"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// version is the guide's business version, on every resource it defines.
const version = "0.1.0"

// obj is a JSON object that keeps its keys in the order written, so the
// generated resources read in the order FHIR lists their elements.
type obj []field

type field struct {
	k string
	v any
}

func (o obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.k)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(f.v)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// set appends or replaces a key.
func (o obj) set(k string, v any) obj {
	for i := range o {
		if o[i].k == k {
			o[i].v = v
			return o
		}
	}
	return append(o, field{k, v})
}

// encode writes v as indented JSON with a final newline, without escaping
// <, > and & (narratives and expressions read better unescaped).
func encode(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// r4 reads base definitions from the examples package.
type r4 struct {
	dir string
	sds map[string]map[string]any // by type name or url
}

func (r *r4) sd(typ string) (map[string]any, error) {
	if sd, ok := r.sds[typ]; ok {
		return sd, nil
	}
	var sd map[string]any
	b, err := os.ReadFile(filepath.Join(r.dir, "StructureDefinition-"+typ+".json"))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &sd); err != nil {
		return nil, fmt.Errorf("%s: %w", typ, err)
	}
	r.sds[typ] = sd
	return sd, nil
}

func elementsOf(sd map[string]any) []map[string]any {
	snap, _ := sd["snapshot"].(map[string]any)
	raw, _ := snap["element"].([]any)
	out := make([]map[string]any, len(raw))
	for i, e := range raw {
		out[i] = deepCopy(e).(map[string]any)
	}
	return out
}

func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, x := range v {
			m[k] = deepCopy(x)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, x := range v {
			s[i] = deepCopy(x)
		}
		return s
	}
	return v
}

// generate returns every generated file, by path relative to profiles/.
func generate(examplesDir string) (map[string][]byte, error) {
	r := &r4{dir: examplesDir, sds: map[string]map[string]any{}}
	files := map[string][]byte{}
	put := func(name string, v any) error {
		b, err := encode(v)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		files[name] = b
		return nil
	}
	var listed []obj // ImplementationGuide.definition.resource
	add := func(typ, id, name, description string, v any) error {
		listed = append(listed, obj{{"reference", obj{{"reference", typ + "/" + id}}}, {"name", name}, {"description", description}, {"exampleBoolean", false}})
		return put("ig/"+typ+"-"+id+".json", v)
	}
	for _, p := range profiles {
		sd, err := buildProfile(r, p)
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", p.id, err)
		}
		if err := add("StructureDefinition", p.id, p.title, p.description, sd); err != nil {
			return nil, err
		}
	}
	for _, e := range extensions {
		sd, err := buildExtension(r, e)
		if err != nil {
			return nil, fmt.Errorf("extension %s: %w", e.id, err)
		}
		if err := add("StructureDefinition", e.id, e.title, e.description, sd); err != nil {
			return nil, err
		}
	}
	for _, cs := range codeSystems {
		if err := add("CodeSystem", cs.id, cs.title, cs.description, buildCodeSystem(cs)); err != nil {
			return nil, err
		}
		if err := add("ValueSet", cs.id, cs.title, "Every code of the code system "+cs.id, buildValueSet(cs)); err != nil {
			return nil, err
		}
	}
	if err := add("ValueSet", "indication", "Indications", "The diseases treated with microbiota transplantation", indicationValueSet()); err != nil {
		return nil, err
	}
	for _, m := range conceptMaps {
		if err := add("ConceptMap", m.id, m.title, m.title, buildConceptMap(m)); err != nil {
			return nil, err
		}
	}
	for _, sp := range searchParams {
		id := sp.base + "-" + sp.code
		if err := add("SearchParameter", id, sp.code, sp.description, buildSearchParam(sp)); err != nil {
			return nil, err
		}
	}
	if err := add("Measure", "ae-report", "WMT adverse-event incidence and relatedness", "The Measure every $ae-report cites", aeReportMeasure()); err != nil {
		return nil, err
	}
	if err := add("Measure", "efficacy-report", "WMT response and remission at follow-up", "The Measure every $efficacy-report cites", efficacyReportMeasure()); err != nil {
		return nil, err
	}
	for _, op := range operations {
		if err := add("OperationDefinition", op.id, op.title, op.description, buildOperation(op)); err != nil {
			return nil, err
		}
	}
	if err := put("ig/ImplementationGuide-cmts-wmt.json", implementationGuide(listed)); err != nil {
		return nil, err
	}
	sds, vss, err := r4Subset(r)
	if err != nil {
		return nil, err
	}
	var types []string
	if err := fhirtest.ResourceDefinitions(r.dir, func(_ string, sd struct{ Type string }) error {
		types = append(types, sd.Type)
		return nil
	}); err != nil {
		return nil, err
	}
	if err := put("r4/resourcetypes.json", types); err != nil {
		return nil, err
	}
	if err := put("r4/structuredefinitions.json", sds); err != nil {
		return nil, err
	}
	if err := put("r4/terminology.json", vss); err != nil {
		return nil, err
	}
	return files, nil
}

func header(typ, id, url, name, title, description string) obj {
	return obj{
		{"resourceType", typ}, {"id", id}, {"url", url}, {"version", version}, {"name", name},
		{"title", title}, {"status", "active"}, {"experimental", false}, {"date", "2026-11-30"},
		{"publisher", "CMTS (China Microbiota Transplantation System)"},
		{"description", description},
	}
}

// buildProfile makes a StructureDefinition with differential and snapshot.
func buildProfile(r *r4, p profile) (obj, error) {
	baseSD, err := r.sd(p.base)
	if err != nil {
		return nil, err
	}
	snap := elementsOf(baseSD)
	url := sdURL(p.id)
	var diffIDs []string
	diffs := map[string]map[string]any{}
	for _, d := range p.diffs {
		id := d.path
		if d.slice != "" {
			id = d.path + ":" + d.slice
		}
		if index(snap, d.path) < 0 {
			if snap, err = unfold(r, snap, d.path); err != nil {
				return nil, err
			}
		}
		if d.slice != "" {
			at := index(snap, d.path)
			sliced := snap[at]
			if _, ok := sliced["slicing"]; !ok {
				disc := map[string]any{"type": "pattern", "path": "$this"}
				if strings.HasSuffix(d.path, ".extension") {
					disc = map[string]any{"type": "value", "path": "url"}
				}
				sliced["slicing"] = map[string]any{"discriminator": []any{disc}, "ordered": false, "rules": "open"}
				de := diffElement(diffs, &diffIDs, d.path)
				de["slicing"] = sliced["slicing"]
			}
			slice := deepCopy(sliced).(map[string]any)
			delete(slice, "slicing")
			slice["id"] = id
			slice["sliceName"] = d.slice
			end := at
			for i := at + 1; i < len(snap); i++ {
				sid := snap[i]["id"].(string)
				if strings.HasPrefix(sid, d.path+":") || strings.HasPrefix(sid, d.path+".") {
					end = i
				}
			}
			snap = append(snap[:end+1], append([]map[string]any{slice}, snap[end+1:]...)...)
			de := diffElement(diffs, &diffIDs, id)
			de["sliceName"] = d.slice
		}
		e := snap[index(snap, id)]
		de := diffElement(diffs, &diffIDs, id)
		apply(e, d, url)
		apply(de, d, url)
	}
	// The differential lists its elements in snapshot order.
	var delem []any
	for _, e := range snap {
		if de, ok := diffs[e["id"].(string)]; ok {
			delem = append(delem, de)
		}
	}
	sd := header("StructureDefinition", p.id, url, p.name, p.title, p.description)
	sd = append(sd,
		field{"fhirVersion", "4.0.1"}, field{"kind", "resource"}, field{"abstract", false},
		field{"type", p.base}, field{"baseDefinition", "http://hl7.org/fhir/StructureDefinition/" + p.base},
		field{"derivation", "constraint"},
		field{"snapshot", obj{{"element", snap}}},
		field{"differential", obj{{"element", delem}}})
	sd = titleZh(sd, p.titleZh)
	return sd, nil
}

// titleZh adds the Chinese title as a translation extension on title.
func titleZh(o obj, zh string) obj {
	if zh == "" {
		return o
	}
	out := obj{}
	for _, f := range o {
		out = append(out, f)
		if f.k == "title" {
			out = append(out, field{"_title", obj{{"extension", []any{obj{
				{"url", "http://hl7.org/fhir/StructureDefinition/translation"},
				{"extension", []any{
					obj{{"url", "lang"}, {"valueCode", "zh-CN"}},
					obj{{"url", "content"}, {"valueString", zh}},
				}},
			}}}}})
		}
	}
	return out
}

func diffElement(diffs map[string]map[string]any, ids *[]string, id string) map[string]any {
	if e, ok := diffs[id]; ok {
		return e
	}
	path := id
	if i := strings.Index(id, ":"); i >= 0 {
		// Slice ids name the slice in the last segment only (ours do).
		path = id[:i]
	}
	e := map[string]any{"id": id, "path": path}
	diffs[id] = e
	*ids = append(*ids, id)
	return e
}

func index(snap []map[string]any, id string) int {
	for i, e := range snap {
		if e["id"] == id {
			return i
		}
	}
	return -1
}

// unfold adds the children of a data-type element (from the type's own
// definition) to the snapshot, so that a profile can constrain them.
func unfold(r *r4, snap []map[string]any, path string) ([]map[string]any, error) {
	dot := strings.LastIndex(path, ".")
	parent := path[:dot]
	at := index(snap, parent)
	if at < 0 {
		return nil, fmt.Errorf("no element %s to unfold for %s", parent, path)
	}
	types, _ := snap[at]["type"].([]any)
	if len(types) != 1 {
		return nil, fmt.Errorf("%s has %d types; cannot unfold", parent, len(types))
	}
	typ := types[0].(map[string]any)["code"].(string)
	tsd, err := r.sd(typ)
	if err != nil {
		return nil, err
	}
	var kids []map[string]any
	for _, e := range elementsOf(tsd)[1:] {
		e["id"] = parent + strings.TrimPrefix(e["id"].(string), typ)
		e["path"] = parent + strings.TrimPrefix(e["path"].(string), typ)
		kids = append(kids, e)
	}
	out := append([]map[string]any{}, snap[:at+1]...)
	out = append(out, kids...)
	return append(out, snap[at+1:]...), nil
}

// apply writes a differential element's constraints onto e.
func apply(e map[string]any, d diff, source string) {
	if d.min != nil {
		e["min"] = *d.min
	}
	if d.max != "" {
		e["max"] = d.max
	}
	if d.short != "" {
		e["short"] = d.short
	}
	if d.mustSupport {
		e["mustSupport"] = true
	}
	if len(d.types) > 0 {
		var ts []any
		for _, t := range d.types {
			m := map[string]any{"code": t.code}
			if len(t.profiles) > 0 {
				m["profile"] = strs(t.profiles)
			}
			if len(t.targetProfiles) > 0 {
				m["targetProfile"] = strs(t.targetProfiles)
			}
			ts = append(ts, m)
		}
		e["type"] = ts
	}
	if d.binding != nil {
		e["binding"] = map[string]any{"strength": d.binding.strength, "valueSet": d.binding.valueSet}
	}
	for k, v := range d.fixed {
		e[k] = v
	}
	for k, v := range d.pattern {
		e[k] = v
	}
	if len(d.constraints) > 0 {
		cs, _ := e["constraint"].([]any)
		for _, c := range d.constraints {
			cs = append(cs, map[string]any{"key": c.key, "severity": "error", "human": c.human, "expression": c.expression, "source": source})
		}
		e["constraint"] = cs
	}
}

func strs(s []string) []any {
	out := make([]any, len(s))
	for i, x := range s {
		out[i] = x
	}
	return out
}

// buildExtension makes a simple extension's StructureDefinition.
func buildExtension(r *r4, x extension) (obj, error) {
	one := "1"
	valueType := elemType{code: x.valueType, targetProfiles: x.targetProfiles}
	v := diff{path: "Extension.value[x]", min: n(1), types: []elemType{valueType}, pattern: x.pattern}
	if x.valueSet != "" {
		v.binding = bound("required", x.valueSet)
	}
	root := diff{path: "Extension", short: x.title, max: one}
	if x.constraint != nil {
		root.constraints = []constraint{*x.constraint}
	}
	p := profile{id: x.id, name: x.name, title: x.title, base: "Extension", description: x.description,
		diffs: []diff{root, {path: "Extension.extension", max: "0"},
			{path: "Extension.url", fixed: map[string]any{"fixedUri": sdURL(x.id)}}, v}}
	sd, err := buildProfile(r, p)
	if err != nil {
		return nil, err
	}
	var ctx []any
	for _, c := range x.contexts {
		ctx = append(ctx, obj{{"type", "element"}, {"expression", c}})
	}
	out := obj{}
	for _, f := range sd {
		switch f.k {
		case "kind":
			f.v = "complex-type"
		case "type":
			out = append(out, field{"context", ctx})
		}
		out = append(out, f)
	}
	return out, nil
}

func designation(zh string) []any {
	return []any{obj{{"language", "zh-CN"}, {"use", obj{{"system", "http://terminology.hl7.org/CodeSystem/designation-usage"}, {"code", "display"}}}, {"value", zh}}}
}

func buildCodeSystem(cs codeSystem) obj {
	o := header("CodeSystem", cs.id, csURL(cs.id), cs.name, cs.title, cs.description)
	o = titleZh(o, cs.titleZh)
	o = append(o, field{"caseSensitive", true}, field{"valueSet", vsURL(cs.id)}, field{"content", "complete"}, field{"count", len(cs.concepts)})
	if len(cs.properties) > 0 {
		var ps []any
		for _, p := range cs.properties {
			ps = append(ps, obj{{"code", p[0]}, {"description", p[1]}, {"type", "integer"}})
		}
		o = append(o, field{"property", ps})
	}
	var cc []any
	for _, c := range cs.concepts {
		co := obj{{"code", c.code}, {"display", c.en}, {"designation", designation(c.zh)}}
		if len(c.props) > 0 {
			var ps []any
			for _, p := range c.props {
				ps = append(ps, obj{{"code", p.name}, {"valueInteger", p.value}})
			}
			co = append(co, field{"property", ps})
		}
		cc = append(cc, co)
	}
	return append(o, field{"concept", cc})
}

func buildValueSet(cs codeSystem) obj {
	o := header("ValueSet", cs.id, vsURL(cs.id), cs.name, cs.title, "Every code of the code system "+csURL(cs.id)+".")
	o = titleZh(o, cs.titleZh)
	return append(o, field{"compose", obj{{"include", []any{obj{{"system", csURL(cs.id)}}}}}})
}

func indicationValueSet() obj {
	o := header("ValueSet", "indication", vsURL("indication"), "Indication", "Indications",
		"The diseases treated with microbiota transplantation: ICD-10 codes, and local codes for other indications.")
	o = titleZh(o, "适应证")
	var cc []any
	for _, c := range indications {
		cc = append(cc, obj{{"code", c.code}, {"display", c.en}, {"designation", designation(c.zh)}})
	}
	return append(o, field{"compose", obj{{"include", []any{
		obj{{"system", icd10}, {"concept", cc}},
		obj{{"system", csURL("other-indication")}},
	}}}})
}

func buildConceptMap(m mapping) obj {
	o := header("ConceptMap", m.id, base+"/ConceptMap/"+m.id, m.name, m.title, m.title+".")
	var elems []any
	for _, row := range m.rows {
		t := obj{}
		if row[1] != "" {
			t = append(t, field{"code", row[1]}, field{"display", row[2]})
		}
		t = append(t, field{"equivalence", row[3]})
		elems = append(elems, obj{{"code", row[0]}, {"target", []any{t}}})
	}
	return append(o, field{"sourceCanonical", vsURL("relatedness")}, field{"targetCanonical", m.targetVS},
		field{"group", []any{obj{{"source", csURL("relatedness")}, {"target", m.target}, {"element", elems}}}})
}

func buildSearchParam(sp searchParam) obj {
	id := sp.base + "-" + sp.code
	o := header("SearchParameter", id, base+"/SearchParameter/"+id, sp.code, "", sp.description)
	o = without(o, "title")
	o = append(o, field{"code", sp.code}, field{"base", []any{sp.base}}, field{"type", sp.typ},
		field{"expression", sp.expression}, field{"xpathUsage", "normal"})
	if len(sp.target) > 0 {
		o = append(o, field{"target", strs(sp.target)})
	}
	return o
}

func without(o obj, k string) obj {
	out := obj{}
	for _, f := range o {
		if f.k != k {
			out = append(out, f)
		}
	}
	return out
}

func implementationGuide(listed []obj) obj {
	o := header("ImplementationGuide", "cmts-wmt", base+"/ImplementationGuide/cmts-wmt", "CmtsWmt",
		"CMTS washed microbiota transplantation implementation guide",
		"Profiles, extensions, terminology and search parameters of the CMTS registry for washed microbiota transplantation (WMT) and faecal microbiota transplantation.")
	o = titleZh(o, "CMTS 洗涤菌群移植实施指南")
	res := make([]any, len(listed))
	for i, l := range listed {
		res[i] = l
	}
	return append(o, field{"packageId", "org.fmtbank.fhir.cmts"}, field{"license", "CC0-1.0"},
		field{"fhirVersion", []any{"4.0.1"}}, field{"definition", obj{{"resource", res}}})
}

// r4Subset is what the validator needs of R4 at run time to check our
// profiles: the data types' definitions (trimmed to what validation reads),
// the base resources our profiles constrain, and the code systems and value
// sets of their required and extensible bindings.
func r4Subset(r *r4) ([]any, []any, error) {
	files, err := filepath.Glob(filepath.Join(r.dir, "StructureDefinition-*.json"))
	if err != nil {
		return nil, nil, err
	}
	keep := map[string]bool{"Resource": true, "DomainResource": true, "Organization": true}
	for _, p := range profiles {
		keep[p.base] = true
	}
	var out []any
	vsNeeded := map[string]bool{}
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "StructureDefinition-"), ".json")
		sd, err := r.sd(name)
		if err != nil {
			return nil, nil, err
		}
		kind, _ := sd["kind"].(string)
		deriv, _ := sd["derivation"].(string)
		url, _ := sd["url"].(string)
		isType := (kind == "primitive-type" || kind == "complex-type") && sd["type"] != "Extension" &&
			strings.HasPrefix(url, "http://hl7.org/fhir/StructureDefinition/") && (deriv == "specialization" || deriv == "constraint" && (name == "SimpleQuantity" || name == "MoneyQuantity"))
		if !isType && !keep[name] && name != "Extension" {
			continue
		}
		if kind == "resource" && !keep[name] {
			continue
		}
		t := trimSD(sd)
		out = append(out, t)
		for _, e := range elementsOf(sd) {
			if b, ok := e["binding"].(map[string]any); ok {
				if s := b["strength"]; s == "required" || s == "extensible" {
					if vs, ok := b["valueSet"].(string); ok {
						vsNeeded[strings.SplitN(vs, "|", 2)[0]] = true
					}
				}
			}
		}
	}
	// Our profiles' own bindings to R4 value sets are those of the bases.
	vss, err := terminologySubset(r, vsNeeded)
	return out, vss, err
}

var elementKeys = []string{"id", "path", "sliceName", "min", "max", "contentReference", "type", "binding", "constraint", "slicing"}

func trimSD(sd map[string]any) obj {
	o := obj{}
	for _, k := range []string{"resourceType", "id", "url", "name", "kind", "abstract", "type", "baseDefinition", "derivation"} {
		if v, ok := sd[k]; ok {
			o = append(o, field{k, v})
		}
	}
	var elems []any
	for _, e := range elementsOf(sd) {
		t := obj{}
		for _, k := range elementKeys {
			v, ok := e[k]
			if !ok {
				continue
			}
			switch k {
			case "binding":
				b := v.(map[string]any)
				v = obj{{"strength", b["strength"]}, {"valueSet", b["valueSet"]}}
				if b["valueSet"] == nil {
					v = obj{{"strength", b["strength"]}}
				}
			case "constraint":
				var cs []any
				for _, c := range v.([]any) {
					c := c.(map[string]any)
					cs = append(cs, obj{{"key", c["key"]}, {"severity", c["severity"]}, {"human", c["human"]}, {"expression", c["expression"]}})
				}
				v = cs
			}
			t = append(t, field{k, v})
		}
		var fp []string
		for k := range e {
			if strings.HasPrefix(k, "fixed") || strings.HasPrefix(k, "pattern") {
				fp = append(fp, k)
			}
		}
		sort.Strings(fp)
		for _, k := range fp {
			t = append(t, field{k, e[k]})
		}
		elems = append(elems, t)
	}
	return append(o, field{"snapshot", obj{{"element", elems}}})
}

// terminologySubset copies the value sets named (and those they include)
// and the R4 code systems they draw on, trimmed to codes, displays and
// hierarchy.
func terminologySubset(r *r4, need map[string]bool) ([]any, error) {
	byURL := map[string]string{} // canonical url -> file
	for _, pat := range []string{"ValueSet-*.json", "CodeSystem-*.json"} {
		files, err := filepath.Glob(filepath.Join(r.dir, pat))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			var head struct {
				URL string `json:"url"`
			}
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			if err := json.Unmarshal(b, &head); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			byURL[head.URL] = f
		}
	}
	done := map[string]bool{}
	var queue []string
	for u := range need {
		queue = append(queue, u)
	}
	sort.Strings(queue)
	var out []any
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		if done[u] {
			continue
		}
		done[u] = true
		f, ok := byURL[u]
		if !ok {
			continue // an external code system or value set (e.g. BCP-47)
		}
		var res map[string]any
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &res); err != nil {
			return nil, err
		}
		switch res["resourceType"] {
		case "ValueSet":
			compose, _ := res["compose"].(map[string]any)
			for _, part := range []string{"include", "exclude"} {
				incs, _ := compose[part].([]any)
				for _, inc := range incs {
					inc := inc.(map[string]any)
					if s, ok := inc["system"].(string); ok {
						queue = append(queue, s)
					}
					vs, _ := inc["valueSet"].([]any)
					for _, v := range vs {
						queue = append(queue, strings.SplitN(v.(string), "|", 2)[0])
					}
				}
			}
			out = append(out, obj{{"resourceType", "ValueSet"}, {"url", u}, {"name", res["name"]}, {"compose", compose}})
		case "CodeSystem":
			o := obj{{"resourceType", "CodeSystem"}, {"url", u}, {"name", res["name"]}, {"content", res["content"]}}
			if res["caseSensitive"] != nil {
				o = append(o, field{"caseSensitive", res["caseSensitive"]})
			}
			if res["concept"] != nil {
				o = append(o, field{"concept", trimConcepts(res["concept"].([]any))})
			}
			out = append(out, o)
		}
	}
	return out, nil
}

func trimConcepts(cs []any) []any {
	out := make([]any, len(cs))
	for i, c := range cs {
		c := c.(map[string]any)
		o := obj{{"code", c["code"]}}
		if d, ok := c["display"]; ok {
			o = append(o, field{"display", d})
		}
		if sub, ok := c["concept"].([]any); ok {
			o = append(o, field{"concept", trimConcepts(sub)})
		}
		out[i] = o
	}
	return out
}
