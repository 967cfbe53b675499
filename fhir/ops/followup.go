package ops

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/jsonscan"
	"github.com/fmtbank/cmts/store"
)

// The follow-up schedule of wmt-ig.md (CodeSystem follow-up): every WMT
// course is followed at these time points, counted in calendar days from
// the date of the course's last procedure (the date as recorded in its
// performedDateTime, in its own offset). A time point's window runs from
// target-win to target+win days, both days included.
const (
	followUpSystem = csBase + "follow-up"
	followUpURL    = profileBase + "follow-up"
	measureSystem  = csBase + "efficacy-measure"
	// paramFollowUp is the search parameter of an Observation's follow-up
	// extension (only cmts-efficacy Observations have it).
	paramFollowUp = "follow-up"
)

// followUpPoint is one time point of CodeSystem follow-up.
type followUpPoint struct {
	code     string
	day, win int
	en, zh   string
}

// followUpPoints are the time points in schedule order.
var followUpPoints = []followUpPoint{
	{"w1", 7, 3, "Week 1", "第1周"},
	{"w4", 28, 3, "Week 4", "第4周"},
	{"w8", 56, 7, "Week 8", "第8周"},
	{"w12", 84, 7, "Week 12", "第12周"},
	{"m6", 182, 30, "Month 6", "第6个月"},
	{"m12", 365, 30, "Month 12", "第12个月"},
	{"m24", 730, 30, "Month 24", "第24个月"},
}

// course is one (recipient, course) of WMT procedures, as the follow-up
// reads it.
type course struct {
	tenant, patient, number string
	// last is the course's last procedure (latest performed; ties: the
	// greater id); lastAt its instant, lastDay its recorded date (UTC
	// midnight of the date as written).
	last    string
	lastAt  time.Time
	lastDay time.Time
	// firstAt is the instant of the course's first procedure.
	firstAt time.Time
	// route, transplant, indication are the last procedure's.
	route, transplant, indication string
	// next is the recorded date of the first procedure of the recipient's
	// next course (the earliest procedure of another course performed after
	// this one's last); zero if none.
	next time.Time
	// seen[t] lists the assessments at time point t (index into
	// followUpPoints), each with its recorded date (zero: none) and
	// measure and boolean value.
	seen [][]assessment
}

// assessment is one cmts-efficacy Observation as the follow-up reads it.
type assessment struct {
	day     time.Time // recorded date of effectiveDateTime (zero: none)
	measure string
	value   int8 // 1 true, 0 false, -1 no valueBoolean
}

// window is the first and last day of time point t of c.
func (c *course) window(t int) (start, end time.Time) {
	fp := followUpPoints[t]
	return c.lastDay.AddDate(0, 0, fp.day-fp.win), c.lastDay.AddDate(0, 0, fp.day+fp.win)
}

// superseded reports whether time point t of c is no longer followed on
// day on: the recipient's next course began on or before the window's last
// day (and on or before on). A new course starts a new schedule.
func (c *course) superseded(t int, on time.Time) bool {
	_, end := c.window(t)
	return !c.next.IsZero() && !c.next.After(end) && !c.next.After(on)
}

// assessed reports whether c has an assessment at time point t recorded on
// or before on.
func (c *course) assessed(t int, on time.Time) bool {
	for _, a := range c.seen[t] {
		if a.day.IsZero() || !a.day.After(on) {
			return true
		}
	}
	return false
}

// positive reports whether c has, at time point t and recorded on or
// before on, an assessment of measure whose valueBoolean is true.
func (c *course) positive(t int, measure string, on time.Time) bool {
	for _, a := range c.seen[t] {
		if a.measure == measure && a.value == 1 && (a.day.IsZero() || !a.day.After(on)) {
			return true
		}
	}
	return false
}

// recordedDay is the date of a FHIR date or dateTime as written (its own
// offset), as a UTC midnight; ok false when s has no full date.
func recordedDay(s string) (time.Time, bool) {
	if len(s) < len(time.DateOnly) {
		return time.Time{}, false
	}
	d, err := time.Parse(time.DateOnly, s[:len(time.DateOnly)])
	return d, err == nil
}

// followUpData is every course p may see, with its assessments.
type followUpData struct {
	courses []*course
	// indicationSystem is the coding system of each indication code seen.
	indicationSystem map[string]string
}

// readCourses reads, under a, every WMT procedure (grouped into courses),
// the indications of the courses' last procedures and every cmts-efficacy
// assessment of a course (by its focus procedure).
func (o *Ops) readCourses(ctx context.Context, p *fhir.Principal, a store.Access) (*followUpData, error) {
	type procRow struct {
		id, tenant, patient, course string
		at                          time.Time
		day                         time.Time
		route, transplant, reason   string
	}
	var procs []procRow
	err := scanDecoded(ctx, o, p, a, "Procedure", decodeProcedure, func(v *store.Version, pr procFields) error {
		tt := (concept{Coding: pr.code}).code(csBase + "transplant-type")
		if (!pr.wmtProfile && tt == "") || pr.status == "not-done" || pr.status == "entered-in-error" || pr.subject == "" {
			return nil
		}
		at, _, err := dateBounds(pr.performed)
		if err != nil {
			return nil
		}
		day, ok := recordedDay(pr.performed)
		if !ok {
			return nil
		}
		procs = append(procs, procRow{id: v.ID, tenant: v.Tenant, patient: pr.subject, course: pr.course, at: at, day: day,
			route: pr.route, transplant: tt, reason: pr.reason})
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Courses, and each procedure's course.
	byKey := map[string]*course{}
	ofProc := map[string]*course{}
	reasons := map[*course]string{}
	var order []*course
	for _, pr := range procs {
		k := pr.tenant + "\x00" + pr.patient + "\x00" + pr.course
		c := byKey[k]
		if c == nil {
			c = &course{tenant: pr.tenant, patient: pr.patient, number: pr.course, firstAt: pr.at, seen: make([][]assessment, len(followUpPoints))}
			byKey[k] = c
			order = append(order, c)
		}
		ofProc[pr.id] = c
		if pr.at.Before(c.firstAt) {
			c.firstAt = pr.at
		}
		if c.last == "" || pr.at.After(c.lastAt) || (pr.at.Equal(c.lastAt) && pr.id > c.last) {
			c.last, c.lastAt, c.lastDay = pr.id, pr.at, pr.day
			c.route, c.transplant = pr.route, pr.transplant
			reasons[c] = pr.reason
		}
	}
	// The next course of each: the earliest first procedure of another
	// course of the recipient performed after this one's last.
	firstDay := map[*course]time.Time{}
	for _, pr := range procs {
		c := ofProc[pr.id]
		if pr.at.Equal(c.firstAt) {
			firstDay[c] = pr.day
		}
	}
	byPatient := map[string][]*course{}
	for _, c := range order {
		k := c.tenant + "\x00" + c.patient
		byPatient[k] = append(byPatient[k], c)
	}
	for _, cs := range byPatient {
		for _, c := range cs {
			var nextAt time.Time
			for _, n := range cs {
				if n != c && n.firstAt.After(c.lastAt) && (nextAt.IsZero() || n.firstAt.Before(nextAt)) {
					nextAt, c.next = n.firstAt, firstDay[n]
				}
			}
		}
	}
	// Indications.
	byIndex := map[int]string{}
	var ids []string
	for i, c := range order {
		if r := reasons[c]; r != "" {
			byIndex[i] = r
			ids = append(ids, r)
		}
	}
	codes, err := o.indications(ctx, p, a, ids)
	if err != nil {
		return nil, err
	}
	d := &followUpData{courses: order, indicationSystem: map[string]string{}}
	for i, id := range byIndex {
		cd := codes[id]
		order[i].indication = cd.Code
		if cd.Code != "" {
			d.indicationSystem[cd.Code] = cd.System
		}
	}
	// Assessments, each to the course of its focus procedure.
	point := map[string]int{}
	for i, fp := range followUpPoints {
		point[fp.code] = i
	}
	err = scanDecoded(ctx, o, p, a, "Observation", decodeEfficacy, func(v *store.Version, e efficacyFields) error {
		t, ok := point[e.followUp]
		if !ok || e.status == "entered-in-error" || e.status == "cancelled" {
			return nil
		}
		c := ofProc[e.focus]
		if c == nil || c.tenant != v.Tenant {
			return nil
		}
		as := assessment{measure: e.measure, value: e.value}
		as.day, _ = recordedDay(e.effective)
		c.seen[t] = append(c.seen[t], as)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// efficacyFields are the fields of a cmts-efficacy Observation the
// follow-up reads.
type efficacyFields struct {
	status, followUp, measure, effective string
	focus                                string // the first focus Procedure's id
	value                                int8   // 1 true, 0 false, -1 no valueBoolean
}

// decodeEfficacy reads an Observation's efficacyFields.
func decodeEfficacy(b []byte) (efficacyFields, error) {
	f := efficacyFields{value: -1}
	_, err := jsonscan.Object(b, 0, func(k []byte, at int) (int, error) {
		switch string(k) {
		case "status":
			s, next, err := jsonscan.String(b, at)
			f.status = s
			return next, err
		case "extension":
			return extensions(b, at, func(e extension) {
				if e.url == followUpURL {
					f.followUp = e.code
				}
			})
		case "code":
			cs, next, err := codings(b, at)
			f.measure = (concept{Coding: cs}).code(measureSystem)
			return next, err
		case "effectiveDateTime":
			s, next, err := jsonscan.String(b, at)
			f.effective = s
			return next, err
		case "focus":
			return jsonscan.Array(b, at, func(at int) (int, error) {
				r, next, err := referenceAt(b, at)
				if id := r.id("Procedure"); id != "" && f.focus == "" {
					f.focus = id
				}
				return next, err
			})
		case "valueBoolean":
			next, err := jsonscan.SkipValue(b, at)
			if err != nil {
				return 0, err
			}
			switch string(b[at:next]) {
			case "true":
				f.value = 1
			case "false":
				f.value = 0
			}
			return next, nil
		}
		return jsonscan.SkipValue(b, at)
	})
	return f, err
}

// onParam reads an operation's on parameter: a FHIR date (a dateTime
// counts by its recorded date); default today, UTC.
func (o *Ops) onParam(params url.Values) (time.Time, error) {
	s := params.Get("on")
	if s == "" {
		return day(o.now()), nil
	}
	if _, _, err := dateBounds(s); err == nil {
		if d, ok := recordedDay(s); ok {
			return d, nil
		}
	}
	return time.Time{}, fhir.Invalid(fhir.IssueValue, "on must be a date (YYYY-MM-DD): "+s, "on 必须是日期（YYYY-MM-DD）："+s)
}

// missedVisit is one follow-up visit due and not made.
type missedVisit struct {
	c          *course
	point      int
	start, end time.Time
	overdue    bool
}

// FollowUpDue answers $follow-up-due for p on day on: every follow-up
// visit whose window has opened by on (open: on is within it; overdue: its
// last day is before on), that no later course superseded and at which no
// assessment was recorded by on, for the recipients p reads (a hospital its
// own; the regulator every tenant, de-identified). It answers a searchset
// Bundle: each recipient (mode match), then a Task (mode include) per
// missed visit; csv answers one row per visit instead.
func (o *Ops) FollowUpDue(ctx context.Context, p *fhir.Principal, on time.Time, csv bool) ([]byte, error) {
	a := o.policy.Access(p)
	d, err := o.readCourses(ctx, p, a)
	if err != nil {
		return nil, err
	}
	byPatient := map[string][]missedVisit{}
	var patients []string
	for _, c := range d.courses {
		for t := range followUpPoints {
			start, end := c.window(t)
			if start.After(on) || c.superseded(t, on) || c.assessed(t, on) {
				continue
			}
			k := c.tenant + "\x00" + c.patient
			if byPatient[k] == nil {
				patients = append(patients, k)
			}
			byPatient[k] = append(byPatient[k], missedVisit{c: c, point: t, start: start, end: end, overdue: end.Before(on)})
		}
	}
	for _, vs := range byPatient {
		slices.SortFunc(vs, func(x, y missedVisit) int {
			if c := x.start.Compare(y.start); c != 0 {
				return c
			}
			return strings.Compare(x.c.last, y.c.last)
		})
	}
	// The most urgent first: by the earliest window opened, then by id.
	slices.SortFunc(patients, func(x, y string) int {
		if c := byPatient[x][0].start.Compare(byPatient[y][0].start); c != 0 {
			return c
		}
		return strings.Compare(x, y)
	})
	views, err := o.patientViews(ctx, p, a, byPatient)
	if err != nil {
		return nil, err
	}
	if csv {
		var b strings.Builder
		b.WriteString("patient,recipient_code,tenant,course,procedure,follow_up,window_start,window_end,status\r\n")
		for _, k := range patients {
			if _, ok := views[k]; !ok {
				continue
			}
			for _, v := range byPatient[k] {
				b.WriteString(strings.Join([]string{csvField(v.c.patient), csvField(recipientCode(views[k])), csvField(v.c.tenant),
					csvField(v.c.number), csvField(v.c.last), followUpPoints[v.point].code, v.start.Format(time.DateOnly),
					v.end.Format(time.DateOnly), visitStatus(v.overdue)}, ","))
				b.WriteString("\r\n")
			}
		}
		return []byte(b.String()), nil
	}
	type search struct {
		Mode string `json:"mode"`
	}
	type entry struct {
		FullURL  string          `json:"fullUrl,omitempty"`
		Resource json.RawMessage `json:"resource"`
		Search   search          `json:"search"`
	}
	out := struct {
		ResourceType string  `json:"resourceType"`
		Type         string  `json:"type"`
		Total        int     `json:"total"`
		Entry        []entry `json:"entry"`
	}{ResourceType: "Bundle", Type: "searchset", Entry: []entry{}}
	for _, k := range patients {
		view, ok := views[k]
		if !ok {
			continue // no longer readable: its visits are not shown either
		}
		out.Total++
		out.Entry = append(out.Entry, entry{FullURL: "Patient/" + byPatient[k][0].c.patient, Resource: view, Search: search{"match"}})
		for _, v := range byPatient[k] {
			task, err := json.Marshal(visitTask(v))
			if err != nil {
				return nil, err
			}
			out.Entry = append(out.Entry, entry{Resource: task, Search: search{"include"}})
		}
	}
	return json.Marshal(out)
}

func visitStatus(overdue bool) string {
	if overdue {
		return "overdue"
	}
	return "open"
}

// patientViews reads the recipients named by byPatient's keys (tenant NUL
// id) and answers each as p sees it, tagged with its tenant in
// meta.source; a recipient p does not read is absent.
func (o *Ops) patientViews(ctx context.Context, p *fhir.Principal, a store.Access, byPatient map[string][]missedVisit) (map[string]json.RawMessage, error) {
	var ids []string
	for _, vs := range byPatient {
		ids = append(ids, vs[0].c.patient)
	}
	out := map[string]json.RawMessage{}
	for _, f := range idsExpr(ids) {
		err := o.scanFilter(ctx, p, a, "Patient", f, func(v *store.Version) error {
			k := v.Tenant + "\x00" + v.ID
			if byPatient[k] == nil {
				return nil
			}
			body, err := o.policy.View(p, v)
			if err != nil {
				return err
			}
			if body == nil {
				return nil
			}
			tagged, err := withSource(body, TenantSource+v.Tenant)
			if err != nil {
				return err
			}
			out[k] = tagged
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// recipientCode is the recipient-code identifier of a Patient's JSON.
func recipientCode(body []byte) string {
	var pt struct {
		Identifier []struct{ System, Value string }
	}
	if json.Unmarshal(body, &pt) != nil {
		return ""
	}
	for _, id := range pt.Identifier {
		if id.System == sidBase+"recipient-code" {
			return id.Value
		}
	}
	return ""
}

// JSON of the Task that stands for one missed visit (not stored: a
// to-do the clinician acts on by booking the visit).
type (
	taskPeriod struct {
		Start string `json:"start"`
		End   string `json:"end"`
	}
	taskMeta struct {
		Source string `json:"source"`
	}
	visitTaskJSON struct {
		ResourceType    string     `json:"resourceType"`
		Meta            taskMeta   `json:"meta"`
		Status          string     `json:"status"`
		BusinessStatus  mrConcept  `json:"businessStatus"`
		Intent          string     `json:"intent"`
		Code            mrConcept  `json:"code"`
		Description     string     `json:"description"`
		Focus           reference  `json:"focus"`
		For             reference  `json:"for"`
		ExecutionPeriod taskPeriod `json:"executionPeriod"`
	}
)

func visitTask(v missedVisit) visitTaskJSON {
	fp := followUpPoints[v.point]
	status := mrConcept{Coding: []coding{{Code: "open"}}, Text: "open / 窗口期内"}
	en, zh := "open", "窗口期内"
	if v.overdue {
		status = mrConcept{Coding: []coding{{Code: "overdue"}}, Text: "overdue / 已逾期"}
		en, zh = "overdue", "已逾期"
	}
	start, end := v.start.Format(time.DateOnly), v.end.Format(time.DateOnly)
	return visitTaskJSON{ResourceType: "Task", Meta: taskMeta{Source: TenantSource + v.c.tenant}, Status: "requested",
		BusinessStatus: status, Intent: "plan",
		Code: mrConcept{Coding: []coding{{System: followUpSystem, Code: fp.code}}, Text: fp.code},
		Description: fp.en + " follow-up visit after course " + v.c.number + ", window " + start + " to " + end + ", " + en +
			" / 第" + v.c.number + "疗程后" + fp.zh + "随访，窗口 " + start + " 至 " + end + "，" + zh,
		Focus: reference{Reference: "Procedure/" + v.c.last}, For: reference{Reference: "Patient/" + v.c.patient},
		ExecutionPeriod: taskPeriod{Start: start, End: end}}
}
