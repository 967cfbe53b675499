package fhir

// ScanValid is Limits.scan (Scan without its JSON syntax check, which the
// codec does first anyway), for the benchmark.
func ScanValid(l Limits, body []byte) error { return l.scan(body) }
