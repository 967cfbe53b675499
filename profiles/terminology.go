package profiles

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Terminology holds code systems, value sets and concept maps, and answers
// the questions validation and the terminology operations ask of them. It is
// safe for concurrent use once loaded.
type Terminology struct {
	systems map[string]*codeSystem // by url
	sets    map[string]*valueSet   // by url
	maps    map[string]*conceptMap // by url

	mu        sync.Mutex
	expansion map[string]*Expansion // by value set url
}

// Concept is one code of a code system, with its displays by language
// ("" for the code system's own display) and its properties.
type Concept struct {
	System   string
	Code     string
	Display  string
	Displays map[string]string // by language tag, e.g. "zh-CN"
	// Properties are the concept's properties (code -> value, as decoded
	// from JSON: string, bool, json.Number).
	Properties map[string]any
	// Parent is the code this concept is nested under ("" at the top).
	Parent string
}

type codeSystem struct {
	url, name     string
	complete      bool
	caseSensitive bool
	concepts      map[string]*Concept
	order         []string
}

type valueSet struct {
	url, name string
	compose   composeDef
	// expansion lists the codes of a value set stored expanded.
	expansion []struct {
		System, Code, Display string
	}
}

type composeDef struct {
	Include []includeDef `json:"include"`
	Exclude []includeDef `json:"exclude"`
}

type includeDef struct {
	System   string   `json:"system"`
	ValueSet []string `json:"valueSet"`
	Concept  []struct {
		Code        string `json:"code"`
		Display     string `json:"display"`
		Designation []struct {
			Language string `json:"language"`
			Value    string `json:"value"`
		} `json:"designation"`
	} `json:"concept"`
	Filter []struct {
		Property string `json:"property"`
		Op       string `json:"op"`
		Value    string `json:"value"`
	} `json:"filter"`
}

type conceptMap struct {
	url, name      string
	source, target string // value set canonicals
	groups         []struct {
		Source  string `json:"source"`
		Target  string `json:"target"`
		Element []struct {
			Code    string `json:"code"`
			Display string `json:"display"`
			Target  []struct {
				Code        string `json:"code"`
				Display     string `json:"display"`
				Equivalence string `json:"equivalence"`
				Comment     string `json:"comment"`
			} `json:"target"`
		} `json:"element"`
	}
}

// NewTerminology returns an empty terminology.
func NewTerminology() *Terminology {
	return &Terminology{systems: map[string]*codeSystem{}, sets: map[string]*valueSet{},
		maps: map[string]*conceptMap{}, expansion: map[string]*Expansion{}}
}

type rawConcept struct {
	Code        string `json:"code"`
	Display     string `json:"display"`
	Designation []struct {
		Language string `json:"language"`
		Value    string `json:"value"`
	} `json:"designation"`
	Property []map[string]any `json:"property"`
	Concept  []rawConcept     `json:"concept"`
}

// Add loads a CodeSystem, ValueSet or ConceptMap (other resources are
// ignored). A later resource with the same url replaces an earlier one.
func (t *Terminology) Add(b []byte) error {
	var head struct {
		ResourceType  string          `json:"resourceType"`
		URL           string          `json:"url"`
		Name          string          `json:"name"`
		Content       string          `json:"content"`
		CaseSensitive *bool           `json:"caseSensitive"`
		Concept       []rawConcept    `json:"concept"`
		Compose       composeDef      `json:"compose"`
		Expansion     json.RawMessage `json:"expansion"`
		Source        string          `json:"sourceCanonical"`
		SourceURI     string          `json:"sourceUri"`
		Target        string          `json:"targetCanonical"`
		TargetURI     string          `json:"targetUri"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expansion = map[string]*Expansion{}
	switch head.ResourceType {
	case "CodeSystem":
		cs := &codeSystem{url: head.URL, name: head.Name, complete: head.Content == "complete",
			caseSensitive: head.CaseSensitive == nil || *head.CaseSensitive, concepts: map[string]*Concept{}}
		var walk func(cs []rawConcept, parent string)
		walk = func(rcs []rawConcept, parent string) {
			for _, rc := range rcs {
				c := &Concept{System: head.URL, Code: rc.Code, Display: rc.Display, Parent: parent}
				for _, d := range rc.Designation {
					if d.Language != "" {
						if c.Displays == nil {
							c.Displays = map[string]string{}
						}
						c.Displays[d.Language] = d.Value
					}
				}
				for _, p := range rc.Property {
					code, _ := p["code"].(string)
					for k, v := range p {
						if strings.HasPrefix(k, "value") {
							if c.Properties == nil {
								c.Properties = map[string]any{}
							}
							c.Properties[code] = v
						}
					}
				}
				if _, dup := cs.concepts[rc.Code]; !dup {
					cs.order = append(cs.order, rc.Code)
				}
				cs.concepts[rc.Code] = c
				walk(rc.Concept, rc.Code)
			}
		}
		walk(head.Concept, "")
		t.systems[head.URL] = cs
	case "ValueSet":
		vs := &valueSet{url: head.URL, name: head.Name, compose: head.Compose}
		if len(head.Expansion) > 0 {
			var exp struct {
				Contains []struct{ System, Code, Display string } `json:"contains"`
			}
			if err := json.Unmarshal(head.Expansion, &exp); err != nil {
				return fmt.Errorf("ValueSet %s expansion: %w", head.URL, err)
			}
			for _, c := range exp.Contains {
				vs.expansion = append(vs.expansion, struct{ System, Code, Display string }{c.System, c.Code, c.Display})
			}
		}
		t.sets[head.URL] = vs
	case "ConceptMap":
		cm := &conceptMap{url: head.URL, name: head.Name, source: first(head.Source, head.SourceURI), target: first(head.Target, head.TargetURI)}
		var body struct {
			Group json.RawMessage `json:"group"`
		}
		if err := json.Unmarshal(b, &body); err != nil {
			return err
		}
		if len(body.Group) > 0 {
			if err := json.Unmarshal(body.Group, &cm.groups); err != nil {
				return fmt.Errorf("ConceptMap %s: %w", head.URL, err)
			}
		}
		t.maps[head.URL] = cm
	}
	return nil
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Expansion is the content of a value set as far as it can be enumerated.
type Expansion struct {
	URL string
	// Concepts are the enumerated codes, in definition order.
	Concepts []*Concept
	codes    map[string]map[string]*Concept // system -> code
	// Open lists the systems included whole or by a filter this
	// terminology cannot evaluate (e.g. SNOMED CT, BCP-47): any code of
	// theirs may or may not be in the value set.
	Open map[string]bool
}

// Complete reports whether every code of the value set is enumerated.
func (e *Expansion) Complete() bool { return len(e.Open) == 0 }

// Has reports whether system|code is in the value set: yes, no, or
// unknown (the system is open). An empty system matches any system.
func (e *Expansion) Has(system, code string) (in, known bool) {
	if system == "" {
		for _, m := range e.codes {
			if _, ok := m[code]; ok {
				return true, true
			}
		}
		return false, e.Complete()
	}
	if _, ok := e.codes[system][code]; ok {
		return true, true
	}
	if e.Open[system] {
		return false, false
	}
	return false, true
}

// Systems reports whether the value set draws any code from system.
func (e *Expansion) Systems(system string) bool {
	_, ok := e.codes[system]
	return ok || e.Open[system]
}

// Lookup returns a concept of a code system, or nil.
func (t *Terminology) Lookup(system, code string) *Concept {
	cs := t.systems[system]
	if cs == nil {
		return nil
	}
	if c, ok := cs.concepts[code]; ok {
		return c
	}
	if !cs.caseSensitive {
		for k, c := range cs.concepts {
			if strings.EqualFold(k, code) {
				return c
			}
		}
	}
	return nil
}

// HasSystem reports whether the code system is loaded, and complete.
func (t *Terminology) HasSystem(system string) (loaded, complete bool) {
	cs := t.systems[system]
	return cs != nil, cs != nil && cs.complete
}

// Expand expands the value set with the given canonical url (a "|version"
// suffix is ignored); ok is false if the value set is not loaded.
func (t *Terminology) Expand(url string) (exp *Expansion, ok bool) {
	url, _, _ = strings.Cut(url, "|")
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.expand(url, map[string]bool{})
}

func (t *Terminology) expand(url string, seen map[string]bool) (*Expansion, bool) {
	if e, ok := t.expansion[url]; ok {
		return e, true
	}
	vs, ok := t.sets[url]
	if !ok {
		return nil, false
	}
	e := &Expansion{URL: url, codes: map[string]map[string]*Concept{}, Open: map[string]bool{}}
	if seen[url] {
		return e, true
	}
	seen[url] = true
	add := func(c *Concept) {
		m := e.codes[c.System]
		if m == nil {
			m = map[string]*Concept{}
			e.codes[c.System] = m
		}
		if _, dup := m[c.Code]; !dup {
			m[c.Code] = c
			e.Concepts = append(e.Concepts, c)
		}
	}
	for _, c := range vs.expansion {
		add(&Concept{System: c.System, Code: c.Code, Display: c.Display})
	}
	part := func(inc includeDef) ([]*Concept, map[string]bool) {
		open := map[string]bool{}
		var cs []*Concept
		var sets []*Expansion
		for _, u := range inc.ValueSet {
			u, _, _ = strings.Cut(u, "|")
			sub, ok := t.expand(u, seen)
			if !ok {
				open["*"+u] = true
				continue
			}
			sets = append(sets, sub)
			for s := range sub.Open {
				open[s] = true
			}
		}
		if inc.System == "" {
			for _, s := range sets {
				cs = append(cs, s.Concepts...)
			}
			return cs, open
		}
		sys := t.systems[inc.System]
		switch {
		case len(inc.Concept) > 0:
			for _, c := range inc.Concept {
				con := &Concept{System: inc.System, Code: c.Code, Display: c.Display}
				if sys != nil {
					if known := sys.concepts[c.Code]; known != nil {
						cp := *known
						con = &cp
					}
				}
				if c.Display != "" {
					con.Display = c.Display
				}
				for _, d := range c.Designation {
					if con.Displays == nil {
						con.Displays = map[string]string{}
					}
					con.Displays[d.Language] = d.Value
				}
				cs = append(cs, con)
			}
		case sys == nil || !sys.complete:
			open[inc.System] = true
		case len(inc.Filter) > 0:
			for _, code := range sys.order {
				c := sys.concepts[code]
				keep := true
				for _, f := range inc.Filter {
					match, ok := filterMatch(sys, c, f.Property, f.Op, f.Value)
					if !ok {
						open[inc.System] = true
						return nil, open
					}
					keep = keep && match
				}
				if keep {
					cs = append(cs, c)
				}
			}
		default:
			for _, code := range sys.order {
				cs = append(cs, sys.concepts[code])
			}
		}
		if len(sets) > 0 {
			// A system and value sets: the intersection.
			var kept []*Concept
			for _, c := range cs {
				all := true
				for _, s := range sets {
					if in, _ := s.Has(c.System, c.Code); !in {
						all = false
					}
				}
				if all {
					kept = append(kept, c)
				}
			}
			cs = kept
		}
		return cs, open
	}
	for _, inc := range vs.compose.Include {
		cs, open := part(inc)
		for _, c := range cs {
			add(c)
		}
		for s := range open {
			e.Open[s] = true
		}
	}
	for _, exc := range vs.compose.Exclude {
		cs, _ := part(exc)
		for _, c := range cs {
			if m := e.codes[c.System]; m != nil && m[c.Code] != nil {
				delete(m, c.Code)
				kept := e.Concepts[:0]
				for _, k := range e.Concepts {
					if k.System != c.System || k.Code != c.Code {
						kept = append(kept, k)
					}
				}
				e.Concepts = kept
			}
		}
	}
	t.expansion[url] = e
	return e, true
}

// filterMatch evaluates a ValueSet include filter on a concept; ok is false
// for a filter this terminology does not implement.
func filterMatch(cs *codeSystem, c *Concept, property, op, value string) (match, ok bool) {
	switch {
	case property == "concept" && (op == "is-a" || op == "descendent-of"):
		if c.Code == value {
			return op == "is-a", true
		}
		for p := c.Parent; p != ""; p = cs.concepts[p].Parent {
			if p == value {
				return true, true
			}
			if cs.concepts[p] == nil {
				break
			}
		}
		return false, true
	case property == "concept" && op == "is-not-a":
		m, ok := filterMatch(cs, c, property, "is-a", value)
		return !m, ok
	case property == "concept" && op == "in":
		for _, v := range strings.Split(value, ",") {
			if strings.TrimSpace(v) == c.Code {
				return true, true
			}
		}
		return false, true
	case op == "=":
		if v, has := c.Properties[property]; has {
			return fmt.Sprint(v) == value, true
		}
		return false, true
	}
	return false, false
}

// ValueSetURLs lists the loaded value sets' urls, sorted.
func (t *Terminology) ValueSetURLs() []string {
	var out []string
	for u := range t.sets {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}
