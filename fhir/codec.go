package fhir

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/fmtbank/cmts/fhir/jsonscan"
	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	d4pb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	bcrpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Codec parses, validates and writes R4 JSON with google/fhir/go. It is safe
// for concurrent use.
type Codec struct {
	um     *jsonformat.Unmarshaller
	m      *jsonformat.Marshaller
	types  map[string]bool
	names  []string
	limits Limits
	// verify makes Marshal check each canonical form against the
	// marshaller's (Verifying).
	verify bool
}

// NewCodec builds the R4 codec, with the default limits. Times without a
// zone are read as UTC.
func NewCodec() (*Codec, error) {
	um, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		return nil, fmt.Errorf("fhir: unmarshaller: %w", err)
	}
	m, err := jsonformat.NewMarshaller(false, "", "", fhirversion.R4)
	if err != nil {
		return nil, fmt.Errorf("fhir: marshaller: %w", err)
	}
	c := &Codec{um: um, m: m, types: map[string]bool{}, limits: DefaultLimits()}
	oneof := (&bcrpb.ContainedResource{}).ProtoReflect().Descriptor().Oneofs().Get(0)
	for i := 0; i < oneof.Fields().Len(); i++ {
		name := string(oneof.Fields().Get(i).Message().Name())
		c.types[name] = true
		c.names = append(c.names, name)
	}
	sort.Strings(c.names)
	return c, nil
}

// WithLimits returns a codec that parses under l (unset fields at their
// defaults); c is unchanged, and the two share their parser.
func (c *Codec) WithLimits(l Limits) *Codec {
	cc := *c
	cc.limits = l.WithDefaults()
	return &cc
}

// Verifying returns a codec that checks, on every Marshal, that the form
// written from the received JSON (canonical) is the marshaller's, and
// fails the write if it is not; the test suites write through one.
func (c *Codec) Verifying() *Codec {
	cc := *c
	cc.verify = true
	return &cc
}

// Limits returns the limits Parse enforces.
func (c *Codec) Limits() Limits { return c.limits }

// IsResourceType reports whether name is an R4 resource type.
func (c *Codec) IsResourceType(name string) bool { return c.types[name] }

// ResourceTypes lists the R4 resource types, sorted.
func (c *Codec) ResourceTypes() []string { return c.names }

// Resource is a parsed, valid R4 resource.
type Resource struct {
	Type string
	cr   *bcrpb.ContainedResource
	msg  protoreflect.Message
	// raw is the JSON the resource was parsed from, as long as only
	// SetID and SetMeta (recorded in edit) have changed it since: Marshal
	// then writes it from raw (canonical). nil once anything else has.
	raw  []byte
	edit canonicalEdit
}

// collector gathers every validation problem instead of stopping at the first.
type collector struct{ issues []Issue }

func (c *collector) ReportValidationError(path string, err error) error {
	c.issues = append(c.issues, issueFor(path, err, "error"))
	return nil
}

func (c *collector) ReportValidationWarning(path string, err error) error {
	c.issues = append(c.issues, issueFor(path, err, "warning"))
	return nil
}

func issueFor(path string, err error, severity string) Issue {
	is := Issue{Severity: severity, Code: IssueInvalid,
		Message:     Message{EN: "The resource is not valid FHIR R4", ZH: "资源不符合 FHIR R4 规范"},
		Diagnostics: err.Error()}
	msg := strings.ToLower(err.Error())
	switch {
	case strings.Contains(msg, "missing required"):
		is.Code = IssueRequired
		is.Message = Message{EN: "A required element is missing", ZH: "缺少必填元素"}
	case strings.Contains(msg, "unknown field"):
		is.Code = IssueStructure
		is.Message = Message{EN: "Unknown element", ZH: "未知元素"}
	case strings.Contains(msg, "invalid json"):
		is.Code = IssueStructure
		is.Message = Message{EN: "The body is not valid JSON", ZH: "请求体不是合法的 JSON"}
	case strings.Contains(msg, "invalid") || strings.Contains(msg, "expected"):
		is.Code = IssueValue
		is.Message = Message{EN: "An element has a value of the wrong type or form", ZH: "元素的值类型或格式错误"}
	}
	if path != "" {
		is.Expression = []string{path}
	}
	return is
}

// unmarshalIssues turns google/fhir/go's unmarshal errors (whose types are
// internal to that module, but whose fields are exported) into issues with
// their element paths.
func unmarshalIssues(err error) []Issue {
	v := reflect.ValueOf(err)
	if v.Kind() == reflect.Slice {
		var out []Issue
		for i := 0; i < v.Len(); i++ {
			if e, ok := v.Index(i).Interface().(error); ok {
				out = append(out, unmarshalIssues(e)...)
			}
		}
		return out
	}
	path := ""
	if v.Kind() == reflect.Pointer && v.Elem().Kind() == reflect.Struct {
		if f := v.Elem().FieldByName("Path"); f.IsValid() && f.Kind() == reflect.String {
			path = f.String()
		}
		d, g := v.Elem().FieldByName("Details"), v.Elem().FieldByName("Diagnostics")
		if d.IsValid() && g.IsValid() && d.Kind() == reflect.String && g.Kind() == reflect.String {
			text := d.String()
			if g.String() != "" {
				text += ": " + g.String()
			}
			return []Issue{issueFor(path, errors.New(text), "error")}
		}
	}
	return []Issue{issueFor(path, err, "error")}
}

// Parse reads and validates one resource. Every problem found is reported, as
// an *Error (400) with one issue each and the element's path where known.
// Before the R4 parser sees the body, Limits.Scan checks it against the
// codec's limits (413 naming the limit) and refuses duplicate keys and nested
// contained resources (400), stopping at the first problem of that kind.
func (c *Codec) Parse(data []byte) (*Resource, error) {
	if !jsonscan.Valid(data) {
		return nil, Invalid(IssueStructure, "The body is not a JSON object", "请求体不是合法的 JSON 对象")
	}
	return c.ParseValid(data)
}

// ParseValid is Parse of data known to be valid JSON, such as a Bundle
// entry's resource in a body json.Valid accepted: it checks everything
// Parse does but the JSON syntax, which a large Bundle paid for twice.
func (c *Codec) ParseValid(data []byte) (*Resource, error) {
	trimmed, err := object(data)
	if err != nil {
		return nil, err
	}
	if err := c.limits.scan(trimmed); err != nil {
		return nil, err
	}
	return c.parseScanned(trimmed)
}

// ParseScanned is Parse of a resource that the codec's Limits.Scan of a
// larger body accepted, having read it as a resource of its own (its own
// element budget, dom-2): a Bundle entry's, once the Bundle's resourceType
// came first. It skips the syntax check and the scan.
func (c *Codec) ParseScanned(data []byte) (*Resource, error) {
	trimmed, err := object(data)
	if err != nil {
		return nil, err
	}
	return c.parseScanned(trimmed)
}

// object is data without the white space around it, refused unless it is
// a JSON object.
func object(data []byte) ([]byte, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, Invalid(IssueStructure, "The body is not a JSON object", "请求体不是合法的 JSON 对象")
	}
	return trimmed, nil
}

// parseScanned parses and validates trimmed, which passed the scan.
func (c *Codec) parseScanned(trimmed []byte) (*Resource, error) {
	typ, ok := resourceTypeOf(trimmed)
	if !ok {
		return nil, Invalid(IssueRequired, "The resource has no resourceType", "资源缺少 resourceType").WithExpression("resourceType")
	}
	if !c.types[typ] {
		return nil, Invalid(IssueNotSupported, "Unknown resource type '"+typ+"'", "未知的资源类型 '"+typ+"'").WithExpression("resourceType")
	}
	col := &collector{}
	pb, err := c.um.UnmarshalWithErrorReporter(trimmed, col)
	if err != nil {
		return nil, &Error{Status: http.StatusBadRequest, Issues: unmarshalIssues(err), Cause: err}
	}
	var errs []Issue
	for _, is := range col.issues {
		if is.Severity == "error" {
			errs = append(errs, is)
		}
	}
	if len(errs) > 0 {
		return nil, &Error{Status: http.StatusBadRequest, Issues: errs}
	}
	cr, ok := pb.(*bcrpb.ContainedResource)
	if !ok {
		return nil, fmt.Errorf("fhir: unmarshal gave %T", pb)
	}
	m := cr.ProtoReflect()
	fd := m.WhichOneof(m.Descriptor().Oneofs().Get(0))
	if fd == nil {
		return nil, Invalid(IssueStructure, "The body holds no resource", "请求体中没有资源")
	}
	inner := m.Get(fd).Message()
	return &Resource{Type: string(inner.Descriptor().Name()), cr: cr, msg: inner, raw: trimmed}, nil
}

// resourceTypeOf reads the top-level resourceType of a valid JSON object in
// place (decoding the body into a struct to find it walked every member).
func resourceTypeOf(body []byte) (string, bool) {
	typ, found := "", false
	_, err := jsonscan.Object(body, 0, func(key []byte, at int) (int, error) {
		if string(key) != "resourceType" || body[at] != '"' {
			return jsonscan.SkipValue(body, at)
		}
		s, next, err := jsonscan.String(body, at)
		typ, found = s, true
		return next, err
	})
	return typ, found && err == nil
}

// ID returns the resource's logical id ("" if none).
func (r *Resource) ID() string {
	fd := r.msg.Descriptor().Fields().ByName("id")
	if fd == nil || !r.msg.Has(fd) {
		return ""
	}
	return r.msg.Get(fd).Message().Interface().(*d4pb.Id).GetValue()
}

// SetID sets the logical id.
func (r *Resource) SetID(id string) {
	fd := r.msg.Descriptor().Fields().ByName("id")
	r.msg.Set(fd, protoreflect.ValueOfMessage((&d4pb.Id{Value: id}).ProtoReflect()))
	r.edit.id, r.edit.setID = id, true
}

// SetMeta sets meta.versionId and meta.lastUpdated, keeping the rest of meta.
func (r *Resource) SetMeta(versionID string, lastUpdated time.Time) {
	fd := r.msg.Descriptor().Fields().ByName("meta")
	meta := r.msg.Mutable(fd).Message()
	mf := meta.Descriptor().Fields()
	meta.Set(mf.ByName("version_id"), protoreflect.ValueOfMessage((&d4pb.Id{Value: versionID}).ProtoReflect()))
	meta.Set(mf.ByName("last_updated"), protoreflect.ValueOfMessage((&d4pb.Instant{
		ValueUs: lastUpdated.UnixMicro(), Timezone: "Z", Precision: d4pb.Instant_MICROSECOND,
	}).ProtoReflect()))
	r.edit.versionID, r.edit.lastUpdated, r.edit.setMeta = versionID, lastUpdated, true
}

// Marshal writes the resource as compact R4 JSON, in the one form
// google/fhir/go's marshaller writes: from the JSON it was parsed from where
// that is sure to give the same bytes (canonical), else by marshalling.
func (c *Codec) Marshal(r *Resource) ([]byte, error) {
	if r.raw != nil {
		if b, ok := canonical(make([]byte, 0, len(r.raw)+64), r.raw, r.edit); ok {
			if c.verify {
				m, err := c.marshal(r)
				if err != nil {
					return nil, err
				}
				if !bytes.Equal(b, m) {
					return nil, fmt.Errorf("fhir: canonical form of %s differs from the marshaller's:\n%s\n%s", r.Type, b, m)
				}
			}
			return b, nil
		}
	}
	return c.marshal(r)
}

func (c *Codec) marshal(r *Resource) ([]byte, error) {
	b, err := c.m.Marshal(r.cr)
	if err != nil {
		return nil, fmt.Errorf("fhir: marshal %s: %w", r.Type, err)
	}
	return b, nil
}
