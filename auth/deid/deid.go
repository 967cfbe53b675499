// Package deid makes the de-identified view of FHIR resources that the
// regulator role, reports and Bulk Data export see (wmt-ig.md, "Who owns
// what"): names, telecom, address, photo, narrative text, free-text notes and
// identifiers other than the registry's own codes removed; birthDate cut to
// the year; other dates kept; a security label on every resource changed.
//
// It works on FHIR JSON, as bytes or decoded into generic maps, so that any
// part of the server can apply it without the FHIR model.
package deid

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// RegistrySystemPrefix starts the identifier systems the registry issues
// (donor and recipient codes, ...). They are pseudonymous and are kept.
const RegistrySystemPrefix = "http://fmtbank.org/fhir/sid/"

// SecuritySystem is the code system of the labels added
// (http://hl7.org/fhir/security-labels.html, integrity observations).
const SecuritySystem = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"

// The labels: REDACTED when elements were removed, ABSTRED when a value was
// generalised (birthDate cut to the year).
const (
	LabelRedacted   = "REDACTED"
	LabelAbstracted = "ABSTRED"
)

var labelDisplay = map[string]string{LabelRedacted: "redacted", LabelAbstracted: "abstracted"}

// JSON de-identifies one FHIR JSON resource (a Bundle's entries included)
// and returns it re-encoded; numbers keep their exact text.
func JSON(b []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var res map[string]any
	if err := dec.Decode(&res); err != nil {
		return nil, fmt.Errorf("deid: %w", err)
	}
	if _, ok := res["resourceType"].(string); !ok {
		return nil, fmt.Errorf("deid: not a FHIR resource (no resourceType)")
	}
	Resource(res)
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(res); err != nil {
		return nil, fmt.Errorf("deid: %w", err)
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n")), nil
}

// Resource de-identifies a decoded FHIR resource in place, and every
// resource inside it (contained resources, Bundle entries), each labelled
// for what was changed in it. It reports whether anything was changed.
func Resource(res map[string]any) bool {
	var c changes
	walkObject(res, &c)
	if c.redacted {
		label(res, LabelRedacted)
	}
	if c.abstracted {
		label(res, LabelAbstracted)
	}
	return c.redacted || c.abstracted
}

type changes struct {
	redacted, abstracted bool
}

// walkObject de-identifies one JSON object's members and recurses.
func walkObject(obj map[string]any, c *changes) {
	_, isResource := obj["resourceType"].(string)
	for key, val := range obj {
		switch {
		case key == "telecom", key == "photo", key == "note", key == "presentedForm":
			delete(obj, key)
			c.redacted = true
			continue
		case key == "address" && isComplex(val):
			delete(obj, key)
			c.redacted = true
			continue
		case key == "name" && isHumanName(val):
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
		case key == "display" && isReference(obj):
			// A reference's display often is the person's name.
			delete(obj, key)
			c.redacted = true
			continue
		case key == "identifier":
			if kept, changed := registryIdentifiers(val); changed {
				c.redacted = true
				if kept == nil {
					delete(obj, key)
				} else {
					obj[key] = kept
				}
				continue
			}
		case (key == "input" || key == "output") && isResource && obj["resourceType"] == "Task":
			// A Task's inputs and outputs carry what a consultation asks
			// and answers: the patient's clinical question, social and
			// economic situation, the advice. Their free text goes; coded
			// and referenced values stay.
			if freeTextValues(val) {
				c.redacted = true
			}
			walkValue(val, c)
			continue
		case key == "birthDate":
			if s, ok := val.(string); ok && len(s) > 4 {
				obj[key] = s[:4]
				c.abstracted = true
			}
			continue
		}
		walkValue(val, c)
	}
}

// walkValue recurses into a member's value; a nested resource (contained,
// Bundle.entry.resource, Parameters.parameter.resource) is labelled for its
// own changes.
func walkValue(val any, c *changes) {
	switch v := val.(type) {
	case map[string]any:
		if _, ok := v["resourceType"].(string); ok {
			if Resource(v) {
				// The container's view changed too.
				c.redacted = true
			}
			return
		}
		walkObject(v, c)
	case []any:
		for _, e := range v {
			walkValue(e, c)
		}
	}
}

// isComplex reports whether v is an object or an array of objects (an
// Address, not a string such as Endpoint.address, a URL).
func isComplex(v any) bool {
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
func isHumanName(v any) bool {
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
func isReference(obj map[string]any) bool {
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
func registryIdentifiers(v any) (kept any, changed bool) {
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
func label(res map[string]any, code string) {
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

// freeTextValues removes the free-text values (valueString, valueMarkdown)
// of a list of Task.input or Task.output elements and reports whether it
// removed any.
func freeTextValues(v any) bool {
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
