package fhirpath

import "strings"

// choiceTypes maps the suffix of a choice-type element name (valueQuantity
// -> "Quantity") to the FHIR R4 type name. It lists the R4 "open" types,
// which include every type a choice element can take.
var choiceTypes = func() map[string]string {
	m := map[string]string{}
	for _, t := range []string{
		// primitive types
		"base64Binary", "boolean", "canonical", "code", "date", "dateTime", "decimal", "id",
		"instant", "integer", "markdown", "oid", "positiveInt", "string", "time",
		"unsignedInt", "uri", "url", "uuid",
		// general-purpose types
		"Address", "Age", "Annotation", "Attachment", "CodeableConcept", "Coding",
		"ContactPoint", "Count", "Distance", "Duration", "HumanName", "Identifier", "Money",
		"Period", "Quantity", "Range", "Ratio", "Reference", "SampledData", "Signature",
		"Timing",
		// metadata types
		"ContactDetail", "Contributor", "DataRequirement", "Expression",
		"ParameterDefinition", "RelatedArtifact", "TriggerDefinition", "UsageContext",
		// special-purpose types
		"Dosage", "Meta",
	} {
		m[strings.ToUpper(t[:1])+t[1:]] = t
	}
	return m
}()

// typeParent gives the base type of the FHIR R4 data types that are
// specialisations of another type than Element.
var typeParent = map[string]string{
	"Age": "Quantity", "Count": "Quantity", "Distance": "Quantity", "Duration": "Quantity",
	"MoneyQuantity": "Quantity", "SimpleQuantity": "Quantity",
	"code": "string", "id": "string", "markdown": "string",
	"canonical": "uri", "oid": "uri", "url": "uri", "uuid": "uri",
	"positiveInt": "integer", "unsignedInt": "integer",
	"DomainResource": "Resource",
	// resources that are not domain resources
	"Bundle": "Resource", "Binary": "Resource", "Parameters": "Resource",
}

// parentType returns the base type of a FHIR type name, or "" at the top.
func parentType(t string) string {
	if p, ok := typeParent[t]; ok {
		return p
	}
	switch {
	case t == "" || t == "Resource" || t == "Element" || strings.HasPrefix(t, "System."):
		return ""
	case choiceTypes[strings.ToUpper(t[:1])+t[1:]] == t, t == "Extension", t == "BackboneElement", t == "Narrative":
		return "Element"
	case t[0] >= 'A' && t[0] <= 'Z':
		// Any other capitalised name is taken to be a resource type.
		return "DomainResource"
	}
	return ""
}

// isType reports whether a value of FHIR type have is an instance of the
// type named by spec (an optional "FHIR." or "System." namespace, then the
// type name), following the R4 type hierarchy.
func isType(have, spec string) bool {
	if have == "" {
		return false
	}
	if have == spec {
		// every path below agrees; the start of each search
		// parameter's path (Patient.name) asks this of its resource
		return true
	}
	if strings.HasPrefix(spec, "System.") {
		return have == spec
	}
	if _, ok := systemOf[spec]; ok && strings.HasPrefix(have, "System.") {
		return have == "System."+spec
	}
	if sys, ok := systemOf[spec]; ok {
		// An unqualified System type name (answer is Boolean) matches
		// the FHIR primitives that map to it.
		for t := have; t != ""; t = parentType(t) {
			if systemOf[t] == sys || t == sys {
				return true
			}
		}
		return have == "System."+spec
	}
	spec = strings.TrimPrefix(spec, "FHIR.")
	for t := have; t != ""; t = parentType(t) {
		if t == spec {
			return true
		}
	}
	return false
}

// systemOf maps the unqualified System type names, and the FHIR primitive
// types, to the System type their values have.
var systemOf = map[string]string{
	"Boolean": "boolean", "String": "string", "Integer": "integer", "Decimal": "decimal",
	"Date": "date", "DateTime": "dateTime", "Time": "time",
}

// choiceElements are the names of the R4 choice elements (value[x],
// effective[x], ...), from the R4 StructureDefinitions: only these names
// are resolved to name+Type children, so that responseCode is not taken for
// a value of "response".
var choiceElements = func() map[string]bool {
	m := map[string]bool{}
	for _, n := range strings.Fields(`abatement additive age allowed amount answer asNeeded author born bounds
		characteristic chargeItem code collected content created date deceased defaultValue definingSubstance
		definition detail diagnosis dose doseNumber due effective entity event example fastingStatus fixed
		identified indication item legallyBinding location manufacturer maxValue medication minValue
		minimumVolume module multipleBirth name occurred occurrence offset onset participantEffective pattern
		performed probability procedure product quantity rate reported scheduled seriesDoses serviced source
		start statusReason studyEffective subject substance target time timing topic used value when`) {
		m[n] = true
	}
	return m
}()
