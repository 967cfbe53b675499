package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/jsonscan"
)

// patchOps is a decoded JSON Patch.
type patchOps = jsonpatch.Patch

// decodePatch reads a JSON Patch body: a non-empty array of at most maxOps
// operations. RFC 6902 allows an empty array, but a request that can change
// nothing is refused rather than answered with a new version.
func decodePatch(body []byte, maxOps int) (jsonpatch.Patch, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '[' || !jsonscan.Valid(trimmed) {
		return nil, fhir.Invalid(fhir.IssueStructure, "The body is not a JSON Patch document (a JSON array of operations)",
			"请求体不是 JSON Patch 文档（由操作组成的 JSON 数组）")
	}
	// Count the operations before decoding them: a body of many small
	// operations is refused without building them all.
	var raw []json.RawMessage
	if err := json.Unmarshal(trimmed, &raw); err != nil {
		return nil, fhir.Invalid(fhir.IssueStructure, "The body is not a JSON Patch document (a JSON array of operations)",
			"请求体不是 JSON Patch 文档（由操作组成的 JSON 数组）").WithDiagnostics(err.Error())
	}
	switch {
	case len(raw) == 0:
		return nil, fhir.Invalid(fhir.IssueInvalid, "The JSON Patch has no operations; nothing was changed",
			"JSON Patch 中没有任何操作，资源未修改")
	case len(raw) > maxOps:
		return nil, fhir.TooComplex("max-patch-ops", maxOps, "The JSON Patch has more operations than the limit", "JSON Patch 的操作数超过上限", "")
	}
	ops, err := jsonpatch.DecodePatch(trimmed)
	if err != nil {
		return nil, fhir.Invalid(fhir.IssueStructure, "The body is not a valid JSON Patch document", "请求体不是合法的 JSON Patch 文档").
			WithDiagnostics(err.Error())
	}
	return ops, nil
}

// applyPatch applies ops to doc. copy is the one operation that can grow a
// document faster than the patch body does (each copy can double it), so
// the bytes copied are limited to maxBody, and the result must fit in
// maxBody: a patch can make nothing a PUT could not send.
func applyPatch(ops jsonpatch.Patch, doc []byte, maxBody int64) ([]byte, error) {
	opts := jsonpatch.NewApplyOptions()
	opts.AccumulatedCopySizeLimit = maxBody
	patched, err := ops.ApplyWithOptions(doc, opts)
	var tooBig *jsonpatch.AccumulatedCopySizeError
	switch {
	case errors.As(err, &tooBig):
		return nil, fhir.TooComplex("max-body", int(maxBody), "The JSON Patch copies more bytes than the limit", "JSON Patch 复制的字节数超过上限", "").
			WithStatus(http.StatusUnprocessableEntity)
	case err != nil:
		return nil, fhir.Unprocessable(fhir.IssueProcessing, "The patch cannot be applied to the resource", "补丁无法应用于该资源").
			WithDiagnostics(err.Error())
	case int64(len(patched)) > maxBody:
		return nil, fhir.TooComplex("max-body", int(maxBody), "The patched resource is larger than the limit", "打补丁后的资源超过大小上限", "").
			WithStatus(http.StatusUnprocessableEntity)
	}
	return patched, nil
}
