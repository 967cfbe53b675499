// Package subset shapes FHIR R4 resources for the _summary and _elements
// parameters of search and read (https://hl7.org/fhir/R4/search.html#summary
// and #elements): it removes top-level elements from a resource's JSON and
// marks the result with the SUBSETTED tag.
//
// Which elements are summary, mandatory (min > 0) or modifiers comes from
// the base StructureDefinitions of R4, tabled in elements_gen.go. Only the
// top level of a resource is shaped: contained resources, Bundle entries and
// the insides of kept elements are returned as they are.
package subset

// elements_gen.go is made from the hl7.fhir.r4.examples package that the
// tests install (npm ci, once, into the user cache); with the package
// already unpacked in DIR, run go run ./internal/gen -examples DIR -out
// elements_gen.go instead.
//
//go:generate go run ./internal/gen -out elements_gen.go

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/fmtbank/cmts/fhir"
)

// flags say what the base definition of a resource says of an element.
type flags uint8

const (
	summary   flags = 1 << iota // isSummary
	mandatory                   // min > 0
	modifier                    // isModifier
)

// element is one top-level element of a resource type, under its JSON name.
type element struct {
	flags flags
	// choice is the name of the choice element without [x] ("value" for
	// valueQuantity), or "" if the element is not a choice.
	choice string
}

// The tag that marks a resource some of whose elements were left out
// (http://hl7.org/fhir/R4/search.html#summary).
const (
	subsettedSystem  = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
	subsettedCode    = "SUBSETTED"
	subsettedDisplay = "Resource encoded in summary mode"
)

const subsettedCoding = `{"system":"` + subsettedSystem + `","code":"` + subsettedCode + `","display":"` + subsettedDisplay + `"}`

// Summary applies _summary=mode to body, a resourceType resource in JSON:
//
//   - "true": the elements marked isSummary in the base definition (among
//     them the modifiers that are summary, such as Patient.active and
//     implicitRules), and the mandatory ones, with resourceType, id and
//     meta; modifierExtension, the one modifier R4 leaves out of the
//     summary, is removed;
//   - "text": text, id, meta and the mandatory top-level elements, with
//     resourceType;
//   - "data": everything but text;
//   - "false": body itself, unchanged and not parsed.
//
// A primitive's "_name" member (its id and extensions) goes with "name".
// Elements the base definition does not know are removed in modes true and
// text. If anything was removed, meta.tag gets the SUBSETTED coding (once);
// otherwise the result is the compacted body. Kept members keep their order
// and their values byte for byte (decimals such as 1.50 are not reformatted);
// whitespace outside strings is removed.
//
// A mode other than these four ("count" included, which is no shaping of a
// resource) is a *fhir.Error of status 400, and an unknown resource type in
// modes true and text a fhir.UnknownType error. A body that is not a JSON
// object, or whose resourceType is not resourceType, is a plain error.
func Summary(resourceType string, body []byte, mode string) ([]byte, error) {
	var keep func(name []byte, el element, known bool) bool
	switch mode {
	case "false":
		return body, nil
	case "data":
		keep = func(name []byte, _ element, _ bool) bool { return string(name) != "text" }
	case "true":
		keep = func(_ []byte, el element, known bool) bool {
			return known && el.flags&(summary|mandatory) != 0
		}
	case "text":
		keep = func(name []byte, el element, known bool) bool {
			return string(name) == "text" || known && el.flags&mandatory != 0
		}
	default:
		return nil, fhir.Invalid(fhir.IssueValue,
			"Invalid value '"+mode+"' for '_summary': expected true, text, data or false",
			"'_summary' 的值 '"+mode+"' 无效：应为 true、text、data 或 false").WithExpression("_summary")
	}
	table := r4Elements[resourceType]
	if table == nil && mode != "data" {
		return nil, fhir.UnknownType(resourceType)
	}
	return shape(resourceType, body, table, keep)
}

// Elements applies _elements to body, a resourceType resource in JSON. It
// keeps resourceType, id and meta, the mandatory and the modifier elements
// (as R4 says servers SHOULD, so that what is returned is not misread) and
// the named top-level elements.
//
// A name is an element name as in the base definition: "name",
// "birthDate", or "value" for a choice element, which selects whichever of
// valueQuantity, valueString, ... is present; a JSON name such as
// "valueQuantity" selects that one. A leading "<resourceType>." is
// ignored, and a longer path ("name.family") selects its top-level element,
// since returning more than asked is allowed. Names the resource type does
// not define are ignored; an empty list keeps only what is always kept.
// Members that are no element of the type are removed.
//
// Removal, the SUBSETTED tag, order, values and errors are as for Summary;
// an unknown resource type is a fhir.UnknownType error.
func Elements(resourceType string, body []byte, elements []string) ([]byte, error) {
	table := r4Elements[resourceType]
	if table == nil {
		return nil, fhir.UnknownType(resourceType)
	}
	wanted := make(map[string]bool, len(elements))
	for _, e := range elements {
		e = strings.TrimSpace(e)
		e = strings.TrimPrefix(e, resourceType+".")
		e, _, _ = strings.Cut(e, ".")
		e = strings.TrimSuffix(e, "[x]")
		if e != "" {
			wanted[e] = true
		}
	}
	return shape(resourceType, body, table, func(name []byte, el element, known bool) bool {
		if !known {
			return false
		}
		return el.flags&(mandatory|modifier) != 0 || wanted[string(name)] || el.choice != "" && wanted[el.choice]
	})
}

// member is one member of a compact JSON object: its name, and its name
// and value as written.
type member struct {
	name  []byte // unquoted
	key   []byte // quoted, as written
	value []byte
}

// shape keeps the members of body for which keep is true, and always
// resourceType, id and meta. keep gets the element name (without a
// primitive's "_"), its table entry and whether the table has it.
func shape(resourceType string, body []byte, table map[string]element, keep func(name []byte, el element, known bool) bool) ([]byte, error) {
	members, err := parseObject(body)
	if err != nil {
		return nil, fmt.Errorf("subset: %s resource: %w", resourceType, err)
	}
	// Filtered in place: kept never gets ahead of the loop.
	kept := members[:0]
	removed := false
	meta := -1
	for _, m := range members {
		switch string(m.name) {
		case "resourceType":
			if !isString(m.value, resourceType) {
				return nil, fmt.Errorf("subset: resourceType %s in a body given as %s", m.value, resourceType)
			}
			kept = append(kept, m)
			continue
		case "id", "_id":
			kept = append(kept, m)
			continue
		case "meta":
			meta = len(kept)
			kept = append(kept, m)
			continue
		}
		name := bytes.TrimPrefix(m.name, []byte("_"))
		el, known := table[string(name)]
		if keep(name, el, known) {
			kept = append(kept, m)
		} else {
			removed = true
		}
	}
	if removed {
		if kept, err = tagSubsetted(kept, meta); err != nil {
			return nil, fmt.Errorf("subset: %s resource: %w", resourceType, err)
		}
	}
	return writeObject(make([]byte, 0, len(body)+len(subsettedCoding)+16), kept), nil
}

// tagSubsetted adds the SUBSETTED coding to meta.tag unless it is there,
// creating meta (after id, or after resourceType, or first) and tag as
// needed. meta is the index of the meta member in members, or -1.
func tagSubsetted(members []member, meta int) ([]member, error) {
	if meta < 0 {
		at := 0
		for i, m := range members {
			if n := string(m.name); n == "resourceType" || n == "id" || n == "_id" {
				at = i + 1
			}
		}
		members = append(members, member{})
		copy(members[at+1:], members[at:])
		members[at] = member{name: []byte("meta"), key: []byte(`"meta"`), value: []byte(`{"tag":[` + subsettedCoding + `]}`)}
		return members, nil
	}
	fields, err := splitObject(members[meta].value)
	if err != nil {
		return nil, fmt.Errorf("meta: %w", err)
	}
	tag := -1
	for i, f := range fields {
		if string(f.name) == "tag" {
			tag = i
		}
	}
	if tag < 0 {
		fields = append(fields, member{name: []byte("tag"), key: []byte(`"tag"`), value: []byte(`[` + subsettedCoding + `]`)})
	} else {
		codings := fields[tag].value
		if len(codings) < 2 || codings[0] != '[' {
			return nil, errors.New("meta.tag is not an array")
		}
		var tags []struct {
			System string `json:"system"`
			Code   string `json:"code"`
		}
		// An element that is not an object fails the whole decoding, and
		// the tag is then added: the result is no less valid than the input.
		_ = json.Unmarshal(codings, &tags)
		for _, c := range tags {
			if c.System == subsettedSystem && c.Code == subsettedCode {
				return members, nil
			}
		}
		v := make([]byte, 0, len(codings)+len(subsettedCoding)+1)
		v = append(v, codings[:len(codings)-1]...)
		if len(codings) > 2 {
			v = append(v, ',')
		}
		v = append(v, subsettedCoding...)
		fields[tag].value = append(v, ']')
	}
	members[meta].value = writeObject(make([]byte, 0, len(members[meta].value)+len(subsettedCoding)+16), fields)
	return members, nil
}

// parseObject validates body as JSON, removes insignificant whitespace and
// splits the object it must be into its members, in order.
func parseObject(body []byte) ([]member, error) {
	var buf bytes.Buffer
	buf.Grow(len(body))
	if err := json.Compact(&buf, body); err != nil {
		return nil, err
	}
	return splitObject(buf.Bytes())
}

// splitObject splits valid, compact JSON that is an object into its members,
// in order, each value as written: values are not decoded, so numbers keep
// their exact text (1.50 stays 1.50).
func splitObject(b []byte) ([]member, error) {
	if len(b) < 2 || b[0] != '{' {
		return nil, errors.New("not a JSON object")
	}
	// Resources rarely have more than 32 top-level members.
	members := make([]member, 0, 32)
	for i := 1; i < len(b) && b[i] != '}'; {
		end := skipString(b, i)
		key := b[i:end]
		name := key[1 : len(key)-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var s string
			if err := json.Unmarshal(key, &s); err != nil {
				return nil, err
			}
			name = []byte(s)
		}
		i = end + 1 // the colon
		end = skipValue(b, i)
		members = append(members, member{name: name, key: key, value: b[i:end]})
		i = end
		if i < len(b) && b[i] == ',' {
			i++
		}
	}
	return members, nil
}

// isString reports whether v, a JSON value, is the string s.
func isString(v []byte, s string) bool {
	if len(v) == len(s)+2 && v[0] == '"' && string(v[1:len(v)-1]) == s {
		return true
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return false
	}
	var got string
	return json.Unmarshal(v, &got) == nil && got == s
}

// skipString returns the index after the string that starts at b[i].
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index after the value that starts at b[i], in
// valid, compact JSON.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	default: // number, true, false, null
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' {
			i++
		}
		return i
	}
}

// writeObject appends members to dst as a JSON object.
func writeObject(dst []byte, members []member) []byte {
	dst = append(dst, '{')
	for i, m := range members {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, m.key...)
		dst = append(dst, ':')
		dst = append(dst, m.value...)
	}
	return append(dst, '}')
}
