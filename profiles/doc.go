// Package profiles holds the WMT implementation guide of the CMTS registry
// (the conformance resources of /work/shared/wmt-ig.md, as JSON embedded
// with go:embed), a validator that checks a resource against any R4
// StructureDefinition snapshot, and the terminology operations over the
// guide's code systems and the R4 ones.
//
// The JSON under ig/ and r4/ is generated (go generate) by internal/gen
// from the guide's tables and the R4 definitions in the npm package
// hl7.fhir.r4.examples; do not edit it by hand.
package profiles

//go:generate go run ./internal/gen
