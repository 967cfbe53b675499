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
	"slices"
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

// labelJSON is each label's Coding as JSON.
var labelJSON = map[string][]byte{
	LabelRedacted:   []byte(`{"system":"` + SecuritySystem + `","code":"` + LabelRedacted + `","display":"redacted"}`),
	LabelAbstracted: []byte(`{"system":"` + SecuritySystem + `","code":"` + LabelAbstracted + `","display":"abstracted"}`),
}

// JSON de-identifies one FHIR JSON resource (a Bundle's entries and
// contained resources included, each labelled for what was changed in it)
// and returns it rewritten; what is kept keeps its exact text and order.
func JSON(b []byte) ([]byte, error) {
	obj := bytes.TrimSpace(b)
	if kind(obj) != '{' {
		return nil, fmt.Errorf("deid: not a JSON object")
	}
	sp := &splitter{ms: make([]member, 0, 12), es: make([][]byte, 0, 8)}
	ms, err := sp.members(obj)
	if err != nil {
		return nil, err
	}
	if !isResource(ms) {
		return nil, fmt.Errorf("deid: not a FHIR resource (no resourceType)")
	}
	// Room for the labels, so that adding them moves the tail in place.
	out, _, err := resource(make([]byte, 0, len(obj)+256), ms, sp)
	return out, err
}

type changes struct {
	redacted, abstracted bool
	// sp splits the objects met (one for the whole call).
	sp *splitter
}

// isResource reports whether an object's members make a resource (a
// string resourceType).
func isResource(ms []member) bool {
	for _, m := range ms {
		if string(m.key) == "resourceType" {
			return kind(m.val) == '"'
		}
	}
	return false
}

// resource appends the de-identified resource made of ms to out, labelled
// in its meta for what was changed, and reports whether anything was.
func resource(out []byte, ms []member, sp *splitter) ([]byte, bool, error) {
	c := changes{sp: sp}
	start := len(out)
	out, meta, err := object(out, ms, true, &c)
	if err != nil {
		return nil, false, err
	}
	var labels []string
	if c.redacted {
		labels = append(labels, LabelRedacted)
	}
	if c.abstracted {
		labels = append(labels, LabelAbstracted)
	}
	if len(labels) == 0 {
		return out, false, nil
	}
	var insert []byte
	if meta.end > meta.start {
		// The meta the resource has (always a non-empty value).
		if insert, err = labelled(out[meta.start:meta.end], labels); err != nil {
			return nil, false, err
		}
	} else {
		// A new meta goes after id (or resourceType), where FHIR puts it.
		l, _ := labelled([]byte("{}"), labels)
		if meta.start == start+1 {
			// Before every member (cannot happen for a resource, which
			// starts with resourceType, but kept right).
			insert = append([]byte(`"meta":`), l...)
			if out[meta.start] != '}' {
				insert = append(insert, ',')
			}
		} else {
			insert = append([]byte(`,"meta":`), l...)
		}
	}
	return slices.Replace(out, meta.start, meta.end, insert...), true, nil
}

// span is where a resource's meta value is in the output, or (start ==
// end) where a meta member would be inserted.
type span struct{ start, end int }

// object appends the de-identified object of ms to out (a resource's when
// inResource, then also telling where its meta is).
func object(out []byte, ms []member, inResource bool, c *changes) ([]byte, span, error) {
	ref := isReference(ms)
	task := inResource && resourceType(ms) == "Task"
	n := 0
	put := func(key []byte) {
		if n > 0 {
			out = append(out, ',')
		}
		n++
		out = appendKey(out, key)
	}
	out = append(out, '{')
	meta := span{len(out), len(out)}
	seenMeta := false
	for _, m := range ms {
		switch string(m.key) {
		case "telecom", "photo", "note", "presentedForm":
			c.redacted = true
			continue
		case "address":
			if isComplex(m.val) {
				c.redacted = true
				continue
			}
		case "name":
			if isHumanName(m.val) {
				c.redacted = true
				continue
			}
		case "text":
			// The narrative (Narrative, an object); CodeableConcept.text
			// and the like are strings and stay.
			if inResource && kind(m.val) == '{' {
				c.redacted = true
				continue
			}
		case "comment":
			if kind(m.val) == '"' {
				c.redacted = true
				continue
			}
		case "display":
			// A reference's display often is the person's name.
			if ref {
				c.redacted = true
				continue
			}
		case "identifier":
			ours, changed, err := registryIdentifiers(m.val)
			if err != nil {
				return nil, meta, err
			}
			if changed {
				c.redacted = true
				if ours != nil {
					put(m.key)
					out = append(out, ours...)
				}
				continue
			}
		case "input", "output":
			// A Task's inputs and outputs carry what a consultation asks
			// and answers: the patient's clinical question, social and
			// economic situation, the advice. Their free text goes; coded
			// and referenced values stay.
			if task && kind(m.val) == '[' {
				put(m.key)
				var err error
				if out, err = taskParameters(out, m.val, c); err != nil {
					return nil, meta, err
				}
				continue
			}
		case "birthDate":
			put(m.key)
			if s, ok := stringValue(m.val); ok && len(s) > 4 {
				year, _ := json.Marshal(s[:4])
				out = append(out, year...)
				c.abstracted = true
			} else {
				out = append(out, m.val...)
			}
			continue
		}
		put(m.key)
		at := len(out)
		var err error
		if out, err = value(out, m.val, c); err != nil {
			return nil, meta, err
		}
		if inResource {
			switch string(m.key) {
			case "meta":
				meta, seenMeta = span{at, len(out)}, true
			case "resourceType", "id":
				if !seenMeta {
					meta = span{len(out), len(out)}
				}
			}
		}
	}
	return append(out, '}'), meta, nil
}

// value appends the de-identified value raw to out; a nested resource
// (contained, Bundle.entry.resource, Parameters.parameter.resource) is
// labelled for its own changes, and its container counts as changed too.
func value(out []byte, raw []byte, c *changes) ([]byte, error) {
	switch kind(raw) {
	case '{':
		mark := c.sp.mark()
		defer c.sp.release(mark)
		ms, err := c.sp.members(raw)
		if err != nil {
			return nil, err
		}
		if isResource(ms) {
			out, changed, err := resource(out, ms, c.sp)
			if changed {
				c.redacted = true
			}
			return out, err
		}
		out, _, err = object(out, ms, false, c)
		return out, err
	case '[':
		return array(out, raw, c.sp, func(out, e []byte) ([]byte, error) { return value(out, e, c) })
	}
	return append(out, raw...), nil
}

// array appends the array raw to out, each element as each appends it.
func array(out []byte, raw []byte, sp *splitter, each func(out, e []byte) ([]byte, error)) ([]byte, error) {
	mark := len(sp.es)
	defer func() { sp.es = sp.es[:mark] }()
	es, err := appendElements(sp.es, raw)
	if err != nil {
		return nil, err
	}
	sp.es = es
	es = es[mark:len(es):len(es)]
	out = append(out, '[')
	for i, e := range es {
		if i > 0 {
			out = append(out, ',')
		}
		if out, err = each(out, e); err != nil {
			return nil, err
		}
	}
	return append(out, ']'), nil
}

// writeObject appends the object of ms to out.
func writeObject(out []byte, ms []member) []byte {
	out = append(out, '{')
	for i, m := range ms {
		if i > 0 {
			out = append(out, ',')
		}
		out = appendKey(out, m.key)
		out = append(out, m.val...)
	}
	return append(out, '}')
}

// appendKey appends a member's key and colon.
func appendKey(out []byte, key []byte) []byte {
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			q, _ := json.Marshal(string(key))
			out = append(out, q...)
			return append(out, ':')
		}
	}
	out = append(out, '"')
	out = append(out, key...)
	return append(out, '"', ':')
}

// resourceType is the resourceType of a resource's members.
func resourceType(ms []member) string {
	for _, m := range ms {
		if string(m.key) == "resourceType" {
			s, _ := stringValue(m.val)
			return s
		}
	}
	return ""
}

// taskParameters appends the list of Task.input or Task.output raw to out
// without the free-text values (valueString, valueMarkdown), the rest
// de-identified as anywhere else.
func taskParameters(out []byte, raw []byte, c *changes) ([]byte, error) {
	return array(out, raw, c.sp, func(out, e []byte) ([]byte, error) {
		if kind(e) != '{' {
			return value(out, e, c)
		}
		mark := c.sp.mark()
		defer c.sp.release(mark)
		ms, err := c.sp.members(e)
		if err != nil {
			return nil, err
		}
		kept := ms[:0:0]
		for _, m := range ms {
			if string(m.key) == "valueString" || string(m.key) == "valueMarkdown" {
				c.redacted = true
				continue
			}
			kept = append(kept, m)
		}
		out, _, err = object(out, kept, false, c)
		return out, err
	})
}

// isComplex reports whether raw is an object or a non-empty array of
// objects (an Address, not a string such as Endpoint.address, a URL).
func isComplex(raw []byte) bool {
	switch kind(raw) {
	case '{':
		return true
	case '[':
		es, err := elements(raw)
		if err != nil || len(es) == 0 {
			return false
		}
		for _, e := range es {
			if kind(e) != '{' {
				return false
			}
		}
		return true
	}
	return false
}

// humanNameKeys are the elements only a HumanName has among the types an
// element called name can have.
var humanNameKeys = map[string]bool{"family": true, "given": true, "text": true, "prefix": true, "suffix": true, "use": true, "period": true}

// isHumanName reports whether raw is a HumanName or a list holding one (a
// person's name), not the string name of an organisation, a device or a
// parameter.
func isHumanName(raw []byte) bool {
	one := func(e []byte) bool {
		found := false
		ok := eachMember(e, func(key, _ []byte) bool {
			found = humanNameKeys[string(key)]
			return !found
		})
		return ok && found
	}
	if kind(raw) == '[' {
		es, err := elements(raw)
		if err != nil {
			return false
		}
		for _, e := range es {
			if one(e) {
				return true
			}
		}
		return false
	}
	return one(raw)
}

// isReference reports whether an object is a Reference (reference,
// identifier or type, and no code as a Coding has).
func isReference(ms []member) bool {
	ref := false
	for _, m := range ms {
		switch string(m.key) {
		case "code":
			return false
		case "reference", "identifier", "type":
			ref = true
		}
	}
	return ref
}

// registryIdentifiers keeps the identifiers of the registry's own systems,
// from an Identifier or a list of them; ours is nil when none remain.
func registryIdentifiers(raw []byte) (ours []byte, changed bool, err error) {
	isOurs := func(e []byte) bool {
		ours := false
		ok := eachMember(e, func(key, val []byte) bool {
			if string(key) != "system" {
				return true
			}
			ours = hasPrefix(val, RegistrySystemPrefix)
			return false
		})
		return ok && ours
	}
	switch kind(raw) {
	case '[':
		es, err := elements(raw)
		if err != nil {
			return nil, false, err
		}
		var keep [][]byte
		for _, e := range es {
			if isOurs(e) {
				keep = append(keep, e)
			}
		}
		switch len(keep) {
		case len(es):
			return raw, false, nil
		case 0:
			return nil, true, nil
		}
		out := []byte{'['}
		for i, e := range keep {
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, e...)
		}
		return append(out, ']'), true, nil
	case '{':
		if isOurs(raw) {
			return raw, false, nil
		}
		return nil, true, nil
	}
	return raw, false, nil
}

// labelled returns the meta object raw with the security labels added,
// each once.
func labelled(raw []byte, labels []string) ([]byte, error) {
	if kind(raw) != '{' {
		return nil, errSyntax
	}
	ms, err := members(raw)
	if err != nil {
		return nil, err
	}
	at := -1
	var sec [][]byte
	for i, m := range ms {
		if string(m.key) == "security" && kind(m.val) == '[' {
			at = i
			if sec, err = elements(m.val); err != nil {
				return nil, err
			}
		}
	}
	for _, code := range labels {
		if hasLabel(sec, code) {
			continue
		}
		l := labelJSON[code]
		sec = append(sec, l)
	}
	size := 2
	for _, s := range sec {
		size += len(s) + 1
	}
	list := make([]byte, 0, size)
	list = append(list, '[')
	for i, s := range sec {
		if i > 0 {
			list = append(list, ',')
		}
		list = append(list, s...)
	}
	list = append(list, ']')
	if at < 0 {
		ms = append(ms, member{key: []byte("security"), val: list})
	} else {
		ms[at].val = list
	}
	return writeObject(make([]byte, 0, len(raw)+len(list)+len(`,"security":`)), ms), nil
}

// hasLabel reports whether the security list holds our label code.
func hasLabel(sec [][]byte, code string) bool {
	for _, s := range sec {
		ms, err := members(s)
		if err != nil {
			continue
		}
		var sys, c string
		for _, m := range ms {
			switch string(m.key) {
			case "system":
				sys, _ = stringValue(m.val)
			case "code":
				c, _ = stringValue(m.val)
			}
		}
		if sys == SecuritySystem && c == code {
			return true
		}
	}
	return false
}
