package export

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/store"
)

// The characteristic codes a Group defined by characteristics (actual
// false) may use; docs/export.md lists them.
const (
	// SearchParamSystem codes a characteristic by the name of a Patient
	// search parameter: its value is the parameter's value.
	SearchParamSystem = "http://hl7.org/fhir/SearchParameter"
	snomed            = "http://snomed.info/sct"
	loinc             = "http://loinc.org"
)

// diagnosisCodes code a characteristic "has a Condition with this code":
// SNOMED CT 439401001 |Diagnosis| and LOINC 29308-4 Diagnosis.
var diagnosisCodes = []struct{ system, code string }{{snomed, "439401001"}, {loinc, "29308-4"}}

// cohort is who a Group export covers, as the caller sees them.
type cohort struct {
	// members limits the Patients to these ids (nil: no such limit): the
	// listed members of an actual group, the patients with the Conditions
	// a group's characteristics name.
	members map[string]bool
	// filter is a condition on the Patients (nil: none), from the
	// characteristics coded by Patient search parameters.
	filter store.Expr
}

type codeableConcept struct {
	Coding []struct {
		System string `json:"system"`
		Code   string `json:"code"`
	} `json:"coding"`
}

type characteristic struct {
	Code                 codeableConcept  `json:"code"`
	ValueCodeableConcept *codeableConcept `json:"valueCodeableConcept"`
	ValueBoolean         *bool            `json:"valueBoolean"`
	ValueQuantity        *struct {
		Value      json.Number `json:"value"`
		Comparator string      `json:"comparator"`
		System     string      `json:"system"`
		Code       string      `json:"code"`
	} `json:"valueQuantity"`
	ValueReference *struct {
		Reference string `json:"reference"`
	} `json:"valueReference"`
	ValueRange json.RawMessage `json:"valueRange"`
	Exclude    bool            `json:"exclude"`
	Period     json.RawMessage `json:"period"`
}

// cohort reads Group id as p reads it. Errors: 404 when p cannot read the
// group; 400 for a characteristic outside the supported subset.
func (e *Exporter) cohort(ctx context.Context, p *fhir.Principal, id string) (*cohort, error) {
	v, err := e.opts.Store.Read(ctx, e.opts.Policy.Access(p), "Group", id)
	switch {
	case errors.Is(err, store.ErrNotFound), err == nil && (v.Deleted || !e.opts.Policy.Readable(p, v)):
		return nil, fhir.NotFound("Group", id)
	case err != nil:
		return nil, err
	}
	var g struct {
		Actual *bool `json:"actual"`
		Member []struct {
			Entity struct {
				Reference string `json:"reference"`
			} `json:"entity"`
			Inactive bool `json:"inactive"`
		} `json:"member"`
		Characteristic []characteristic `json:"characteristic"`
	}
	if err := json.Unmarshal(v.Resource, &g); err != nil {
		return nil, err
	}
	if g.Actual == nil || *g.Actual {
		c := &cohort{members: map[string]bool{}}
		for _, m := range g.Member {
			if pid, ok := strings.CutPrefix(m.Entity.Reference, "Patient/"); ok && !m.Inactive {
				c.members[pid] = true
			}
		}
		return c, nil
	}
	return e.characteristics(ctx, p, id, g.Characteristic)
}

func unsupportedCharacteristic(group string, i int, why string) *fhir.Error {
	return fhir.Invalid(fhir.IssueNotSupported,
		fmt.Sprintf("Group/%s: characteristic[%d] is not supported for $export (%s)", group, i, why),
		fmt.Sprintf("Group/%s：$export 不支持 characteristic[%d]（%s）", group, i, why)).
		WithExpression(fmt.Sprintf("Group.characteristic[%d]", i))
}

// characteristics is the cohort of a group defined by cs (all must hold).
func (e *Exporter) characteristics(ctx context.Context, p *fhir.Principal, group string, cs []characteristic) (*cohort, error) {
	if len(cs) == 0 {
		return nil, fhir.Invalid(fhir.IssueNotSupported, "Group/"+group+" lists neither members nor characteristics",
			"Group/"+group+" 既无成员也无特征")
	}
	c := &cohort{}
	params := url.Values{}
	for i, ch := range cs {
		if len(ch.Period) > 0 || len(ch.ValueRange) > 0 {
			return nil, unsupportedCharacteristic(group, i, "period and valueRange")
		}
		if diagnosis(ch.Code) {
			if ch.ValueCodeableConcept == nil || ch.Exclude {
				return nil, unsupportedCharacteristic(group, i, "a diagnosis needs valueCodeableConcept, without exclude")
			}
			ids, err := e.diagnosed(ctx, p, tokens(*ch.ValueCodeableConcept))
			if err != nil {
				return nil, err
			}
			if c.members == nil {
				c.members = ids
			} else {
				for id := range c.members {
					if !ids[id] {
						delete(c.members, id)
					}
				}
			}
			continue
		}
		name := ""
		for _, cd := range ch.Code.Coding {
			if cd.System == SearchParamSystem {
				name = cd.Code
			}
		}
		if name == "" || strings.ContainsAny(name, ":.") {
			return nil, unsupportedCharacteristic(group, i, "code must be a Patient search parameter or a diagnosis")
		}
		var value string
		switch {
		case ch.ValueCodeableConcept != nil:
			value = tokens(*ch.ValueCodeableConcept)
		case ch.ValueBoolean != nil:
			value = fmt.Sprint(*ch.ValueBoolean)
		case ch.ValueReference != nil:
			value = ch.ValueReference.Reference
		case ch.ValueQuantity != nil:
			q := ch.ValueQuantity
			prefix, ok := map[string]string{"": "", "<": "lt", "<=": "le", ">=": "ge", ">": "gt"}[q.Comparator]
			if !ok {
				return nil, unsupportedCharacteristic(group, i, "comparator "+q.Comparator)
			}
			value = prefix + q.Value.String()
			if q.System != "" || q.Code != "" {
				value += "|" + q.System + "|" + q.Code
			}
		}
		if value == "" {
			return nil, unsupportedCharacteristic(group, i, "no supported value[x]")
		}
		if ch.Exclude {
			if ch.ValueCodeableConcept == nil && ch.ValueBoolean == nil {
				return nil, unsupportedCharacteristic(group, i, "exclude needs a coded or boolean value")
			}
			name += ":not"
		}
		params.Add(name, value)
		if _, err := e.opts.Indexer.Compile("Patient", url.Values{name: {value}}); err != nil {
			return nil, unsupportedCharacteristic(group, i, "not a search of Patient: "+fhir.AsError(err).Error())
		}
	}
	if len(params) > 0 {
		x, err := e.opts.Indexer.Compile("Patient", params)
		if err != nil {
			return nil, err
		}
		c.filter = x
	}
	return c, nil
}

// diagnosis reports whether a characteristic's code says "has a Condition".
func diagnosis(code codeableConcept) bool {
	for _, cd := range code.Coding {
		for _, d := range diagnosisCodes {
			if cd.System == d.system && cd.Code == d.code {
				return true
			}
		}
	}
	return false
}

// tokens is a token search value matching any coding of cc.
func tokens(cc codeableConcept) string {
	var vs []string
	for _, cd := range cc.Coding {
		v := cd.Code
		if cd.System != "" {
			v = cd.System + "|" + cd.Code
		}
		vs = append(vs, strings.NewReplacer(`\`, `\\`, ",", `\,`).Replace(v))
	}
	return strings.Join(vs, ",")
}

// diagnosed are the ids of the Patients that are the subject of a
// Condition coded by value (a token search value) that p may see.
func (e *Exporter) diagnosed(ctx context.Context, p *fhir.Principal, value string) (map[string]bool, error) {
	out := map[string]bool{}
	narrow, err := e.opts.Policy.Narrow(p, "Condition")
	if err != nil {
		return out, nil // p sees no Condition: no one has one
	}
	x, err := e.opts.Indexer.Compile("Condition", url.Values{"code": {value}})
	if err != nil {
		return nil, err
	}
	filter := x
	if narrow != nil {
		filter = store.And{narrow, x}
	}
	var after *store.SearchCursor
	for {
		page, err := e.opts.Store.Search(ctx, store.Query{Access: e.opts.Policy.Access(p), Type: "Condition", Filter: filter,
			Count: e.opts.PageSize, After: after})
		if err != nil {
			return nil, err
		}
		for _, v := range page.Versions {
			if !e.opts.Policy.Readable(p, v) {
				continue
			}
			refs, err := e.opts.Indexer.References("Condition", v.Resource, "subject")
			if err != nil {
				return nil, err
			}
			for _, r := range refs {
				if r.Kind == store.KindReference && r.System == "Patient" {
					out[r.Code] = true
				}
			}
		}
		if !page.More || len(page.Versions) == 0 {
			return out, nil
		}
		last := page.Versions[len(page.Versions)-1]
		after = &store.SearchCursor{Type: last.Type, ID: last.ID}
	}
}
