package ops

import (
	"bytes"
	"encoding/json"
	"runtime"

	"golang.org/x/sync/errgroup"

	"github.com/fmtbank/cmts/fhir"
)

// Bundle is the trace as p sees it: a Bundle of type collection with the
// start first, then everything else found in the order reached, each
// resource through the policy's trace view and its meta.source naming its
// owning tenant (TenantSource); what p may not see is left out.
func (o *Ops) Bundle(p *fhir.Principal, t *Trace) ([]byte, error) {
	// meta.source by tenant, made once.
	sources := map[string][]byte{}
	for _, v := range t.Found {
		if sources[v.Tenant] == nil {
			sources[v.Tenant], _ = json.Marshal(TenantSource + v.Tenant)
		}
	}
	// Each entry is rendered (viewed, de-identified, tagged) on its own,
	// so the trace is cut in one part per core, each written as
	// ',{"resource":...}' entries (the very first without its comma); the
	// first part is the Bundle's start, made large enough for the others
	// to be appended to it in order.
	// Written directly: json.Marshal would re-validate and compact every
	// entry, which the store and the view already give compact.
	const head, tail = `{"resourceType":"Bundle","type":"collection","entry":[`, `]}`
	parts := make([][]byte, min(runtime.GOMAXPROCS(0), max(len(t.Found)/64, 1)))
	sizes := make([]int, len(parts))
	for i := range parts {
		for _, v := range t.Found[i*len(t.Found)/len(parts) : (i+1)*len(t.Found)/len(parts)] {
			// The de-identified view may add its security labels.
			sizes[i] += len(v.Resource) + len(sources[v.Tenant]) + len(`,{"resource":"source":,}`) + 256
		}
	}
	var g errgroup.Group
	for i := range parts {
		lo, hi := i*len(t.Found)/len(parts), (i+1)*len(t.Found)/len(parts)
		g.Go(func() error {
			var out []byte
			if i == 0 {
				total := len(head) + len(tail)
				for _, n := range sizes {
					total += n
				}
				out = append(make([]byte, 0, total), head...)
			} else {
				out = make([]byte, 0, sizes[i])
			}
			for _, v := range t.Found[lo:hi] {
				body, ok, err := o.policy.TraceView(p, v)
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
				if i == 0 && len(out) == len(head) {
					out = append(out, `{"resource":`...) // the first entry
				} else {
					out = append(out, `,{"resource":`...)
				}
				if out, err = appendWithSource(out, body, sources[v.Tenant]); err != nil {
					return err
				}
				out = append(out, '}')
			}
			parts[i] = out
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := parts[0]
	for _, part := range parts[1:] {
		if len(out) == len(head) && len(part) > 0 {
			part = part[1:] // the first entry: without its comma
		}
		out = append(out, part...)
	}
	if len(out) == len(head) {
		// No entry: a Bundle without the entry element.
		return []byte(head[:len(head)-len(`,"entry":[`)] + "}"), nil
	}
	return append(out, tail...), nil
}

// appendWithSource appends a resource's JSON to out with meta.source set to
// src (a JSON string).
func appendWithSource(out, body, src []byte) ([]byte, error) {
	// Fast path: a stored resource has a top-level meta without a source
	// (the server wrote versionId and lastUpdated); without contained
	// resources its first "meta" key is the top-level one.
	if i := bytes.Index(body, []byte(`"meta":{`)); i > 0 && !bytes.Contains(body, []byte(`"contained"`)) &&
		!bytes.Contains(body, []byte(`"source"`)) {
		at := i + len(`"meta":{`)
		out = append(out, body[:at]...)
		out = append(out, `"source":`...)
		out = append(out, src...)
		if body[at] != '}' {
			out = append(out, ',')
		}
		return append(out, body[at:]...), nil
	}
	var res map[string]json.RawMessage
	if err := json.Unmarshal(body, &res); err != nil {
		return nil, err
	}
	meta := map[string]json.RawMessage{}
	if raw, ok := res["meta"]; ok {
		if err := json.Unmarshal(raw, &meta); err != nil {
			return nil, err
		}
	}
	meta["source"] = src
	m, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	res["meta"] = m
	b, err := json.Marshal(res)
	if err != nil {
		return nil, err
	}
	return append(out, b...), nil
}

// withSource sets meta.source in a resource's JSON.
func withSource(body []byte, source string) ([]byte, error) {
	src, _ := json.Marshal(source)
	return appendWithSource(make([]byte, 0, len(body)+len(src)+12), body, src)
}
