package search

import (
	"encoding/json"
	"fmt"
	"strings"
)

// customModifiers are the modifiers supported for each parameter type, as
// the generator gives the R4 parameters.
var customModifiers = map[string][]string{
	"string":    {"missing", "exact", "contains"},
	"token":     {"missing", "text", "not", "of-type"},
	"reference": {"missing", "identifier"},
	"uri":       {"missing", "above", "below"},
	"date":      {"missing"},
	"number":    {"missing"},
	"quantity":  {"missing"},
}

// customParam reads a SearchParameter resource into a registry definition.
// Its expression must be one path per base (no "|" across types).
func customParam(b []byte) (*paramDef, error) {
	var sp struct {
		ResourceType string   `json:"resourceType"`
		ID           string   `json:"id"`
		URL          string   `json:"url"`
		Code         string   `json:"code"`
		Base         []string `json:"base"`
		Type         string   `json:"type"`
		Description  string   `json:"description"`
		Expression   string   `json:"expression"`
		Target       []string `json:"target"`
	}
	if err := json.Unmarshal(b, &sp); err != nil {
		return nil, fmt.Errorf("search: custom parameter: %w", err)
	}
	mods, ok := customModifiers[sp.Type]
	if sp.ResourceType != "SearchParameter" || sp.Code == "" || len(sp.Base) == 0 || sp.Expression == "" || !ok {
		return nil, fmt.Errorf("search: custom parameter %q: need a SearchParameter with code, base, expression and a type other than composite or special", sp.URL)
	}
	d := &paramDef{ID: sp.ID, URL: sp.URL, Code: sp.Code, Type: sp.Type, Expression: sp.Expression,
		Targets: sp.Target, Modifiers: mods, custom: true}
	if sp.Type == "number" || sp.Type == "date" || sp.Type == "quantity" {
		d.Comparators = []string{"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"}
	}
	for _, base := range sp.Base {
		if len(sp.Base) > 1 && !strings.HasPrefix(sp.Expression, base+".") {
			return nil, fmt.Errorf("search: custom parameter %q: with several bases, write one parameter per base", sp.URL)
		}
		d.Bases = append(d.Bases, baseDef{Type: base, Doc: sp.Description, Expressions: []string{sp.Expression}})
	}
	return d, nil
}
