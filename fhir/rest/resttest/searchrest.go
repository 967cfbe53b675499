package resttest

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/fmtbank/cmts/fhir"
)

// bundleIDs lists "Type/id" of a searchset's entries by search mode.
func bundleIDs(t *testing.T, r *Response) (match, include []string, next string) {
	t.Helper()
	if r.Status != 200 {
		t.Fatalf("search: %d %.400s", r.Status, r.Body)
	}
	m := r.JSON(t)
	for _, e := range asList(m["entry"]) {
		e := e.(map[string]any)
		res := e["resource"].(map[string]any)
		id := fmt.Sprintf("%s/%s", res["resourceType"], res["id"])
		switch e["search"].(map[string]any)["mode"] {
		case "include":
			include = append(include, id)
		case "outcome":
		default:
			match = append(match, id)
		}
	}
	for _, l := range asList(m["link"]) {
		if l := l.(map[string]any); l["relation"] == "next" {
			next = l["url"].(string)
		}
	}
	return match, include, next
}

// testSearchREST checks what the REST layer adds to a search: paging links
// that stay stable while data changes, _include/_revinclude, _summary,
// _elements, _total, strict handling.
func testSearchREST(t *testing.T, newStore NewStore) {
	c, _ := open(t, newStore)
	put := func(path, body string) {
		t.Helper()
		if r := c.Do("PUT", path, []byte(body)); r.Status != 200 && r.Status != 201 {
			t.Fatalf("PUT %s: %d %s", path, r.Status, r.Body)
		}
	}
	for _, id := range []string{"b", "d", "f", "h", "j", "l", "n"} {
		put("/Patient/"+id, `{"resourceType":"Patient","id":"`+id+`","gender":"female","name":[{"family":"Chen","given":["`+id+`"]}]}`)
	}

	t.Run("paging is stable while data changes", func(t *testing.T) {
		match, _, next := bundleIDs(t, c.Do("GET", "/Patient?gender=female&_count=3", nil))
		all := match
		// Between pages: new resources before and after the cursor, and a
		// delete of one already paged past.
		put("/Patient/a", `{"resourceType":"Patient","id":"a","gender":"female"}`)
		put("/Patient/z", `{"resourceType":"Patient","id":"z","gender":"female"}`)
		c.Do("DELETE", "/Patient/b", nil)
		for i := 0; next != ""; i++ {
			if i > 10 {
				t.Fatal("paging does not end")
			}
			match, _, next = bundleIDs(t, c.Do("GET", next, nil))
			all = append(all, match...)
		}
		want := []string{"Patient/b", "Patient/d", "Patient/f", "Patient/h", "Patient/j", "Patient/l", "Patient/n", "Patient/z"}
		if fmt.Sprint(all) != fmt.Sprint(want) {
			t.Errorf("paged %v, want %v (no repeats, no skips)", all, want)
		}
		c.Do("DELETE", "/Patient/a", nil)
		c.Do("DELETE", "/Patient/z", nil)
		put("/Patient/b", `{"resourceType":"Patient","id":"b","gender":"female","name":[{"family":"Chen","given":["b"]}]}`)
	})

	t.Run("sorted paging is stable both ways", func(t *testing.T) {
		patient := func(id, birth string) {
			t.Helper()
			b := ""
			if birth != "" {
				b = `,"birthDate":"` + birth + `"`
			}
			put("/Patient/"+id, `{"resourceType":"Patient","id":"`+id+`","gender":"female","name":[{"family":"Chen","given":["`+id+`"]}]`+b+`}`)
		}
		for id, birth := range map[string]string{"b": "1990-01-01", "d": "1985-05-05", "f": "1985-05-05", "h": "1970-03-03", "j": "2001-12-12", "l": "", "n": "1960-06-06"} {
			patient(id, birth)
		}
		get := func(url string) ([]string, map[string]string) {
			t.Helper()
			r := c.Do("GET", url, nil)
			match, _, _ := bundleIDs(t, r)
			links := map[string]string{}
			for _, l := range asList(r.JSON(t)["link"]) {
				l := l.(map[string]any)
				links[l["relation"].(string)] = l["url"].(string)
			}
			return match, links
		}
		expect := func(what string, got, want []string, links map[string]string, rels ...string) {
			t.Helper()
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s: %v, want %v", what, got, want)
			}
			var have []string
			for rel := range links {
				have = append(have, rel)
			}
			sort.Strings(have)
			sort.Strings(rels)
			if fmt.Sprint(have) != fmt.Sprint(rels) {
				t.Errorf("%s: links %v, want %v", what, have, rels)
			}
		}
		// Youngest first; ties by id; l has no birth date, so it is last.
		p1, l1 := get("/Patient?gender=female&_sort=-birthdate&_count=3")
		expect("page 1", p1, []string{"Patient/j", "Patient/b", "Patient/d"}, l1, "self", "next")
		if strings.Contains(l1["next"], "1985") || strings.Contains(l1["next"], "Chen") {
			t.Errorf("the next link shows data: %s", l1["next"])
		}
		// Between pages: h moves up past the cursor, c arrives after it, and
		// d, the page's last (the cursor itself), is deleted.
		patient("h", "2010-03-03")
		patient("c", "1980-01-01")
		c.Do("DELETE", "/Patient/d", nil)
		p2, l2 := get(l1["next"])
		expect("page 2", p2, []string{"Patient/f", "Patient/c", "Patient/n"}, l2, "self", "first", "next", "previous")
		p3, l3 := get(l2["next"])
		expect("page 3", p3, []string{"Patient/l"}, l3, "self", "first", "previous")
		// Backwards: the three before l, then the rest, h now among them.
		b2, lb2 := get(l3["previous"])
		expect("back to page 2", b2, []string{"Patient/f", "Patient/c", "Patient/n"}, lb2, "self", "first", "next", "previous")
		b1, lb1 := get(lb2["previous"])
		expect("back to page 1", b1, []string{"Patient/h", "Patient/j", "Patient/b"}, lb1, "self", "first", "next")
		f, lf := get(lb1["first"])
		expect("first", f, []string{"Patient/h", "Patient/j", "Patient/b"}, lf, "self", "next")
		c.Do("DELETE", "/Patient/c", nil)
		patient("d", "")
	})

	put("/Organization/org1", `{"resourceType":"Organization","id":"org1","name":"协和医院"}`)
	put("/Patient/p1", `{"resourceType":"Patient","id":"p1","managingOrganization":{"reference":"Organization/org1"}}`)
	put("/Procedure/wmt1", `{"resourceType":"Procedure","id":"wmt1","status":"completed","subject":{"reference":"Patient/p1"}}`)
	put("/AdverseEvent/ae1", `{"resourceType":"AdverseEvent","id":"ae1","actuality":"actual","subject":{"reference":"Patient/p1"},"suspectEntity":[{"instance":{"reference":"Procedure/wmt1"}}]}`)

	for _, tc := range []struct {
		name        string
		query       string
		match, incl []string
	}{
		{"_include", "/Procedure?_id=wmt1&_include=Procedure:subject", []string{"Procedure/wmt1"}, []string{"Patient/p1"}},
		{"_include with target type", "/Procedure?_id=wmt1&_include=Procedure:subject:Group", []string{"Procedure/wmt1"}, nil},
		{"_include:iterate", "/Procedure?_id=wmt1&_include=Procedure:subject&_include:iterate=Patient:organization", []string{"Procedure/wmt1"}, []string{"Organization/org1", "Patient/p1"}},
		{"_revinclude", "/Patient?_id=p1&_revinclude=Procedure:subject&_revinclude=AdverseEvent:subject", []string{"Patient/p1"}, []string{"AdverseEvent/ae1", "Procedure/wmt1"}},
		{"_include *", "/AdverseEvent?_id=ae1&_include=AdverseEvent:*", []string{"AdverseEvent/ae1"}, []string{"Patient/p1", "Procedure/wmt1"}},
		{"each included once", "/AdverseEvent?_id=ae1&_include=AdverseEvent:subject&_include=AdverseEvent:*", []string{"AdverseEvent/ae1"}, []string{"Patient/p1", "Procedure/wmt1"}},
		{"no include of what matched", "/Patient?_id=p1,b&_include=Patient:link", []string{"Patient/b", "Patient/p1"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			match, incl, _ := bundleIDs(t, c.Do("GET", tc.query, nil))
			sort.Strings(incl)
			if fmt.Sprint(match) != fmt.Sprint(tc.match) || fmt.Sprint(incl) != fmt.Sprint(tc.incl) {
				t.Errorf("match %v include %v, want %v and %v", match, incl, tc.match, tc.incl)
			}
		})
	}

	t.Run("_summary=count", func(t *testing.T) {
		m := c.Do("GET", "/Patient?gender=female&_summary=count", nil).JSON(t)
		if m["total"].(float64) != 7 || len(asList(m["entry"])) != 0 {
			t.Errorf("total %v entries %d, want 7 and none", m["total"], len(asList(m["entry"])))
		}
	})
	t.Run("_total=none", func(t *testing.T) {
		if m := c.Do("GET", "/Patient?gender=female&_total=none", nil).JSON(t); m["total"] != nil {
			t.Errorf("total %v, want none", m["total"])
		}
	})
	t.Run("_elements", func(t *testing.T) {
		m := c.Do("GET", "/Patient?_id=b&_elements=gender", nil).JSON(t)
		res := asList(m["entry"])[0].(map[string]any)["resource"].(map[string]any)
		if res["gender"] != "female" || res["name"] != nil {
			t.Errorf("_elements=gender gave %v", res)
		}
		if !strings.Contains(fmt.Sprint(res["meta"]), "SUBSETTED") {
			t.Errorf("no SUBSETTED tag: %v", res["meta"])
		}
	})
	t.Run("_summary on read", func(t *testing.T) {
		r := c.Do("GET", "/Organization/org1?_summary=true", nil)
		if r.Status != 200 || !strings.Contains(string(r.Body), "SUBSETTED") && !strings.Contains(string(r.Body), "协和医院") {
			t.Errorf("read _summary: %d %s", r.Status, r.Body)
		}
	})
	t.Run("POST _search", func(t *testing.T) {
		r := c.Do("POST", "/Patient/_search", []byte("_id=p1"), "Content-Type", "application/x-www-form-urlencoded")
		if match, _, _ := bundleIDs(t, r); fmt.Sprint(match) != "[Patient/p1]" {
			t.Errorf("POST _search: %v", match)
		}
	})
	t.Run("search across types", func(t *testing.T) {
		for _, tc := range []struct{ method, path, body, want string }{
			{"GET", "?_type=Patient,Organization&_id=p1,org1,wmt1", "", "[Organization/org1 Patient/p1]"},
			{"GET", "?_id=p1,wmt1", "", "[Patient/p1 Procedure/wmt1]"},
			{"GET", "?_type=Procedure&_id=p1,wmt1&_include=Procedure:subject", "", "[Procedure/wmt1]"},
			{"POST", "/_search", "_type=Organization&_id=org1", "[Organization/org1]"},
		} {
			var r *Response
			if tc.method == "POST" {
				r = c.Do("POST", tc.path, []byte(tc.body), "Content-Type", "application/x-www-form-urlencoded")
			} else {
				r = c.Do("GET", tc.path, nil)
			}
			match, _, _ := bundleIDs(t, r)
			sort.Strings(match)
			if fmt.Sprint(match) != tc.want {
				t.Errorf("%s %s %s: %v, want %s", tc.method, tc.path, tc.body, match, tc.want)
			}
			self := asList(r.JSON(t)["link"])[0].(map[string]any)["url"].(string)
			if !strings.HasPrefix(self, c.Base+"?") {
				t.Errorf("self link %s, want %s?...", self, c.Base)
			}
		}
		outcome(t, c.Do("GET", "?_type=Nope", nil), 400, fhir.IssueInvalid)
		outcome(t, c.Do("GET", "?gender=female", nil, "Prefer", "handling=strict"), 400, fhir.IssueNotSupported)
	})
	t.Run("strict handling", func(t *testing.T) {
		outcome(t, c.Do("GET", "/Patient?colour=red", nil, "Prefer", "handling=strict"), 400, fhir.IssueNotSupported)
		if r := c.Do("GET", "/Patient?colour=red", nil, "Prefer", "handling=lenient"); r.Status != 200 {
			t.Errorf("lenient: %d", r.Status)
		}
	})
	t.Run("Chinese prefix", func(t *testing.T) {
		if match, _, _ := bundleIDs(t, c.Do("GET", "/Organization?name=协和", nil)); fmt.Sprint(match) != "[Organization/org1]" {
			t.Errorf("name=协和: %v", match)
		}
	})
}
