package fhir

import (
	"bytes"
	"fmt"
	"strings"

	d4pb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// The datatypes whose values reference rewriting looks at. Canonical is
// deliberately absent: R4 (http.html#trules) leaves canonical references
// alone.
var (
	referenceName = (&d4pb.Reference{}).ProtoReflect().Descriptor().FullName()
	uriName       = (&d4pb.Uri{}).ProtoReflect().Descriptor().FullName()
	urlName       = (&d4pb.Url{}).ProtoReflect().Descriptor().FullName()
	xhtmlName     = (&d4pb.Xhtml{}).ProtoReflect().Descriptor().FullName()
)

// References lists the literal references the resource holds, as written in
// JSON ("Patient/1", "Patient/1/_history/2", "urn:uuid:...", an absolute URL,
// a conditional "Patient?identifier=..."), contained resources included and
// local "#id" references left out, each once, in document order.
func (r *Resource) References() []string {
	var out []string
	seen := map[string]bool{}
	walkReferences(r.msg, func(ref string) (string, bool) {
		if !seen[ref] {
			seen[ref] = true
			out = append(out, ref)
		}
		return "", false
	}, nil)
	return out
}

// RewriteReferences replaces, wherever they sit in the resource (nested
// elements, extensions, contained resources), every Reference.reference and
// every uri or url value that is a key of to, and every narrative href or src
// that is; canonical values are left alone, as R4 asks of a transaction. It
// returns how many values changed.
func (r *Resource) RewriteReferences(to map[string]string) (int, error) {
	if r.raw != nil && !holdsAny(r.raw, to) {
		// Nothing to rewrite, told from the received JSON without
		// walking the parsed resource (a tenth of a create's CPU).
		return 0, nil
	}
	w := &rewriter{to: to}
	err := walkReferences(r.msg, w.reference, w)
	if w.n > 0 || err != nil {
		r.raw = nil // no longer what was received
	}
	return w.n, err
}

// rewriter replaces what is in to, counting.
type rewriter struct {
	to map[string]string
	n  int
}

func (w *rewriter) reference(ref string) (string, bool) {
	v, ok := w.to[ref]
	if ok {
		w.n++
	}
	return v, ok
}

// walkReferences calls f on each Reference of m (recursively), setting the
// reference to what f returns when it says so; with uris set it also
// rewrites uri, url and narrative values found in uris.
func walkReferences(m protoreflect.Message, f func(string) (string, bool), uris *rewriter) error {
	switch m.Descriptor().FullName() {
	case referenceName:
		rewriteReference(m, f)
		// A Reference's extensions may hold references too.
	case uriName, urlName:
		if uris != nil {
			if v, ok := uris.reference(m.Interface().(interface{ GetValue() string }).GetValue()); ok {
				m.Set(m.Descriptor().Fields().ByName("value"), protoreflect.ValueOfString(v))
			}
		}
		return nil
	case xhtmlName:
		if uris != nil {
			x := m.Interface().(*d4pb.Xhtml)
			x.Value = uris.narrative(x.Value)
		}
		return nil
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
			return true
		}
		each := func(v protoreflect.Value) {
			if err != nil {
				return
			}
			if a, ok := v.Message().Interface().(*anypb.Any); ok {
				err = walkAny(a, f, uris)
				return
			}
			err = walkReferences(v.Message(), f, uris)
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				each(l.Get(i))
			}
		} else if !fd.IsMap() {
			each(v)
		}
		return err == nil
	})
	return err
}

// walkAny walks a contained resource, which google/fhir keeps packed.
func walkAny(a *anypb.Any, f func(string) (string, bool), uris *rewriter) error {
	inner, err := a.UnmarshalNew()
	if err != nil {
		return fmt.Errorf("fhir: contained resource: %w", err)
	}
	before := proto.Clone(inner)
	if err := walkReferences(inner.ProtoReflect(), f, uris); err != nil {
		return err
	}
	if proto.Equal(before, inner) {
		return nil
	}
	return a.MarshalFrom(inner)
}

// rewriteReference reads a Reference's literal reference in its JSON form and
// replaces it with what f returns, kept as written (an uri).
func rewriteReference(m protoreflect.Message, f func(string) (string, bool)) {
	oneof := m.Descriptor().Oneofs().ByName("reference")
	if oneof == nil {
		return
	}
	fd := m.WhichOneof(oneof)
	if fd == nil {
		return
	}
	if fd.Name() == "fragment" {
		// "#id": local to the resource, never rewritten.
		return
	}
	var ref string
	switch v := m.Get(fd).Message().Interface().(type) {
	case *d4pb.String:
		ref = v.GetValue()
	case *d4pb.ReferenceId:
		ref = typeOfIDField(string(fd.Name())) + "/" + v.GetValue()
		if h := v.GetHistory().GetValue(); h != "" {
			ref += "/_history/" + h
		}
	default:
		return
	}
	to, ok := f(ref)
	if !ok {
		return
	}
	uri := m.Descriptor().Fields().ByName("uri")
	m.Set(uri, protoreflect.ValueOfMessage((&d4pb.String{Value: to}).ProtoReflect()))
}

// typeOfIDField names the resource type of a typed reference field:
// medication_request_id is MedicationRequest.
func typeOfIDField(name string) string {
	var b strings.Builder
	for part := range strings.SplitSeq(strings.TrimSuffix(name, "_id"), "_") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

// narrative replaces href and src attribute values that are keys of to.
func (w *rewriter) narrative(div string) string {
	for from, to := range w.to {
		if !strings.Contains(div, from) {
			continue
		}
		for _, q := range []string{`"`, `'`} {
			for _, attr := range []string{"href", "src"} {
				old := attr + "=" + q + from + q
				if k := strings.Count(div, old); k > 0 {
					w.n += k
					div = strings.ReplaceAll(div, old, attr+"="+q+to+q)
				}
			}
		}
	}
	return div
}

// holdsAny reports whether the JSON raw (as received, so every value the
// parsed resource holds is one of its strings) might hold something that
// RewriteReferences would rewrite: a string that is a key of to, or a
// narrative link (any string with href= or src=, which is then left to
// the walk).
func holdsAny(raw []byte, to map[string]string) bool {
	for i := 0; i < len(raw); {
		q := bytes.IndexByte(raw[i:], '"')
		if q < 0 {
			return false
		}
		start := i + q + 1
		end := stringEnd(raw, start)
		str := raw[start:end]
		if bytes.IndexByte(str, '\\') >= 0 {
			str = []byte(unquote(str))
		}
		// (indexing by string(str) does not copy it)
		if _, ok := to[string(str)]; ok {
			return true
		}
		if bytes.Contains(str, []byte("href=")) || bytes.Contains(str, []byte("src=")) {
			return true
		}
		i = end + 1
	}
	return false
}
