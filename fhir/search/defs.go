package search

//go:generate go run ./internal/gen -out params_gen.go

// resourceTypeDef is a concrete R4 resource type and the abstract type it
// specialises ("DomainResource" or "Resource").
type resourceTypeDef struct {
	Name string
	Base string
}

// paramDef is an R4 SearchParameter definition as params_gen.go holds it.
type paramDef struct {
	ID   string
	URL  string
	Code string
	// Type is the SearchParameter type: number, date, string, token,
	// reference, composite, quantity, uri or special.
	Type string
	// Expression is the FHIRPath expression as defined ("" for parameters
	// the specification leaves to the server, such as _text).
	Expression string
	// Bases are the resource types the parameter applies to, each with the
	// part of Expression that concerns it and its documentation.
	Bases []baseDef
	// Targets are the resource types a reference parameter may point to.
	Targets []string
	// Components are the parts of a composite parameter, in order.
	Components []componentDef
	// Modifiers are the modifiers the server supports on the parameter;
	// a reference parameter also takes its Targets as modifiers.
	Modifiers []string
	// Comparators are the prefixes the parameter takes.
	Comparators []string
	// custom marks a parameter given to New, which wins over an R4 one of
	// the same code on the same type.
	custom bool
}

// baseDef is one base resource type of a parameter.
type baseDef struct {
	Type string
	Doc  string
	// Expressions are the top-level parts (operands of "|") of the
	// parameter's expression that start from Type or from no type at all;
	// the parameter's values on Type are the union of theirs. Evaluating
	// them one by one skips the other types' parts and the de-duplication
	// of the union, which Entries does on the index entries instead.
	Expressions []string
	// Targets narrow the parameter's Targets on this type when its
	// expressions keep references to some types only (where(resolve() is
	// Patient)); nil when the parameter's Targets apply.
	Targets []string
}

// componentDef is one component of a composite parameter.
type componentDef struct {
	// Definition is the canonical URL of the component's SearchParameter;
	// Code and Type are its code and type.
	Definition string
	Code       string
	Type       string
	// Expression is evaluated on each value the composite's expression
	// yields.
	Expression string
}
