package fhir

// ScanValid is Limits.scan (Scan without its JSON syntax check, which the
// codec does first anyway), for the benchmark.
func ScanValid(l Limits, body []byte) error { return l.scan(body) }

// CanonicalOf is the form Marshal writes of r from its received JSON, and
// whether it could (false: Marshal marshals).
func CanonicalOf(r *Resource) ([]byte, bool) {
	if r.raw == nil {
		return nil, false
	}
	return canonical(nil, r.raw, r.edit)
}

// Marshalled is the marshaller's form of r.
func (c *Codec) Marshalled(r *Resource) ([]byte, error) { return c.marshal(r) }

// ForgetRaw drops r's received JSON, as a change Marshal cannot follow
// does: RewriteReferences then walks the parsed resource whatever it holds.
func (r *Resource) ForgetRaw() { r.raw = nil }
