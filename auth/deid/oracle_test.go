package deid

import (
	"bytes"
	"encoding/json"
	"strings"
)

var labelDisplay = map[string]string{LabelRedacted: "redacted", LabelAbstracted: "abstracted"}

// The oracle: de-identification as first written, on decoded maps. The
// byte rewriter must give the same JSON for every input (TestOracle).

// mapJSON is JSON through the oracle (keys re-encoded in sorted order).
func mapJSON(b []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var res map[string]any
	if err := dec.Decode(&res); err != nil {
		return nil, err
	}
	mapResource(res)
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(res); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n")), nil
}

// Resource de-identifies a decoded FHIR resource in place, and every
// resource inside it (contained resources, Bundle entries), each labelled
// for what was changed in it. It reports whether anything was changed.
func mapResource(res map[string]any) bool {
	var c changes
	mapWalkObject(res, &c)
	if c.redacted {
		mapLabel(res, LabelRedacted)
	}
	if c.abstracted {
		mapLabel(res, LabelAbstracted)
	}
	return c.redacted || c.abstracted
}

// walkObject de-identifies one JSON object's members and recurses.
func mapWalkObject(obj map[string]any, c *changes) {
	_, isResource := obj["resourceType"].(string)
	// Decided before members are deleted (the first version looked during
	// the loop, and map order made it keep a display or not at random).
	ref := mapIsReference(obj)
	for key, val := range obj {
		switch {
		case key == "telecom", key == "photo", key == "note", key == "presentedForm":
			delete(obj, key)
			c.redacted = true
			continue
		case key == "address" && mapIsComplex(val):
			delete(obj, key)
			c.redacted = true
			continue
		case key == "name" && mapIsHumanName(val):
			delete(obj, key)
			c.redacted = true
			continue
		case key == "text" && isResource:
			// The narrative (Narrative, an object); CodeableConcept.text and
			// the like are strings and stay.
			if _, ok := val.(map[string]any); ok {
				delete(obj, key)
				c.redacted = true
				continue
			}
		case key == "comment":
			if _, ok := val.(string); ok {
				delete(obj, key)
				c.redacted = true
				continue
			}
		case key == "display" && ref:
			// A reference's display often is the person's name.
			delete(obj, key)
			c.redacted = true
			continue
		case key == "identifier":
			if kept, changed := mapRegistryIdentifiers(val); changed {
				c.redacted = true
				if kept == nil {
					delete(obj, key)
				} else {
					obj[key] = kept
				}
				continue
			}
		case (key == "input" || key == "output") && isResource && obj["resourceType"] == "Task":
			if mapFreeTextValues(val) {
				c.redacted = true
			}
			mapWalkValue(val, c)
			continue
		case key == "birthDate":
			if s, ok := val.(string); ok && len(s) > 4 {
				obj[key] = s[:4]
				c.abstracted = true
			}
			continue
		}
		mapWalkValue(val, c)
	}
}

// walkValue recurses into a member's value; a nested resource (contained,
// Bundle.entry.resource, Parameters.parameter.resource) is labelled for its
// own changes.
func mapWalkValue(val any, c *changes) {
	switch v := val.(type) {
	case map[string]any:
		if _, ok := v["resourceType"].(string); ok {
			if mapResource(v) {
				// The container's view changed too.
				c.redacted = true
			}
			return
		}
		mapWalkObject(v, c)
	case []any:
		for _, e := range v {
			mapWalkValue(e, c)
		}
	}
}

// isComplex reports whether v is an object or an array of objects (an
// Address, not a string such as Endpoint.address, a URL).
func mapIsComplex(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		return true
	case []any:
		for _, e := range v {
			if _, ok := e.(map[string]any); !ok {
				return false
			}
		}
		return len(v) > 0
	}
	return false
}

// isHumanName reports whether v is a HumanName or a list of them (a person's
// name), not the string name of an organisation, a device or a parameter.
func mapIsHumanName(v any) bool {
	one := func(e any) bool {
		m, ok := e.(map[string]any)
		if !ok {
			return false
		}
		for _, k := range []string{"family", "given", "text", "prefix", "suffix", "use", "period"} {
			if _, ok := m[k]; ok {
				return true
			}
		}
		return false
	}
	if list, ok := v.([]any); ok {
		for _, e := range list {
			if one(e) {
				return true
			}
		}
		return false
	}
	return one(v)
}

// isReference reports whether obj is a Reference (reference, identifier or
// type, and no code as a Coding has).
func mapIsReference(obj map[string]any) bool {
	if _, ok := obj["code"]; ok {
		return false
	}
	for _, k := range []string{"reference", "identifier", "type"} {
		if _, ok := obj[k]; ok {
			return true
		}
	}
	return false
}

// registryIdentifiers keeps the identifiers of the registry's own systems,
// from an Identifier or a list of them; kept is nil when none remain.
func mapRegistryIdentifiers(v any) (kept any, changed bool) {
	isOurs := func(e any) bool {
		m, ok := e.(map[string]any)
		if !ok {
			return false
		}
		sys, _ := m["system"].(string)
		return strings.HasPrefix(sys, RegistrySystemPrefix)
	}
	switch v := v.(type) {
	case []any:
		var out []any
		for _, e := range v {
			if isOurs(e) {
				out = append(out, e)
			}
		}
		if len(out) == len(v) {
			return v, false
		}
		if len(out) == 0 {
			return nil, true
		}
		return out, true
	case map[string]any:
		if isOurs(v) {
			return v, false
		}
		return nil, true
	}
	return v, false
}

// label adds a security label to the resource's meta, once.
func mapLabel(res map[string]any, code string) {
	meta, _ := res["meta"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		res["meta"] = meta
	}
	sec, _ := meta["security"].([]any)
	for _, s := range sec {
		if m, ok := s.(map[string]any); ok && m["system"] == SecuritySystem && m["code"] == code {
			return
		}
	}
	meta["security"] = append(sec, map[string]any{"system": SecuritySystem, "code": code, "display": labelDisplay[code]})
}

func mapFreeTextValues(v any) bool {
	list, _ := v.([]any)
	removed := false
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			continue
		}
		for _, k := range []string{"valueString", "valueMarkdown"} {
			if _, ok := m[k]; ok {
				delete(m, k)
				removed = true
			}
		}
	}
	return removed
}
