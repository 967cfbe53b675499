// Package fhirpath evaluates the subset of FHIRPath that the FHIR R4
// SearchParameter expressions use, over a resource decoded from JSON into
// Go values (map[string]any, []any, string, bool and json.Number, as
// produced by encoding/json with json.Decoder.UseNumber).
//
// Supported:
//   - paths, with choice types (Observation.value matches valueQuantity,
//     valueString, ...; the node's Type names the choice), a leading type
//     name that selects the resource (Observation.code, Resource.id), and
//     primitive values split into "name" and "_name" (value and extensions);
//   - literals: strings, booleans, integers, decimals, @date/time, {};
//   - operators: . [n] | = != < > <= >= and or xor implies, is and as,
//     in and contains, + and - (numbers; + also joins strings), &, unary
//     minus, parentheses;
//   - functions: where, select, exists, all, empty, not, first, last, tail,
//     count, distinct, union, combine, ofType, as, is, extension,
//     hasExtension, hasValue, resolve, startsWith, contains; and for
//     invariants matches, replaceMatches, length, toInteger, toString,
//     substring, isDistinct, intersect, iif, trace (a no-op), children,
//     descendants, htmlChecks (always true: XHTML is not checked);
//   - external constants: %resource, %rootResource, %context, %ucum, %sct,
//     %loinc; $this and $index.
//
// Parse rejects anything else (* / div mod ~, quantity literals, other
// functions such as memberOf()).
//
// Differences from the FHIRPath specification, chosen for search:
//   - there is no type model: Node.Type is known from choice-type suffixes,
//     resourceType, extension() and literals only, so is/as/ofType match only
//     such nodes; dates are compared as text;
//   - "as" filters a collection like ofType() instead of failing on more than
//     one item, as (Observation.component.value as Quantity) intends;
//   - resolve() never fetches anything: it returns the contained resource or
//     Bundle entry the reference points to inside the evaluated resource, or
//     else a placeholder {"resourceType": T, "id": id} from the reference
//     text (or Reference.type), which is enough for "resolve() is Patient".
package fhirpath
