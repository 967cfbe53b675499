package ops

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/store"
)

// The free-WMT rule of wmt-ig.md ($aid-eligibility): a recipient may apply
// when under aidUnder or over aidOver years old (whole years) on the day
// asked, with financial-hardship true.
const (
	aidUnder    = 16
	aidOver     = 60
	hardshipURL = profileBase + "financial-hardship"
)

// Eligibility is the answer of $aid-eligibility.
type Eligibility struct {
	Eligible bool
	// Reason says why, in English then Chinese.
	Reason string
}

// ageOn is the age in whole years on day on of someone born on birth: a
// year is completed on the birthday (a 29 February birthday on 1 March in
// a common year).
func ageOn(birth, on time.Time) int {
	age := on.Year() - birth.Year()
	if on.Month() < birth.Month() || (on.Month() == birth.Month() && on.Day() < birth.Day()) {
		age--
	}
	return age
}

// birthRange is the first and last day a FHIR date (YYYY, YYYY-MM or
// YYYY-MM-DD) may stand for.
func birthRange(s string) (lo, hi time.Time, err error) {
	lo, next, err := dateBounds(s)
	if err != nil || len(s) > len(time.DateOnly) {
		return lo, hi, errors.New("not a date")
	}
	return lo, next.AddDate(0, 0, -1), nil
}

// AidEligibility decides whether the recipient id, as p sees it, may apply
// for free WMT on day on. A recipient p does not read is 404. A birth date
// known only to the month or year (as the regulator sees it) decides only
// when every day it may stand for gives the same answer.
func (o *Ops) AidEligibility(ctx context.Context, p *fhir.Principal, id string, on time.Time) (Eligibility, error) {
	v, err := o.store.Read(ctx, o.policy.Access(p), "Patient", id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Eligibility{}, fhir.NotFound("Patient", id)
	case err != nil:
		return Eligibility{}, err
	case v.Deleted || !o.policy.Readable(p, v):
		return Eligibility{}, fhir.NotFound("Patient", id)
	}
	body, err := o.policy.View(p, v)
	if err != nil {
		return Eligibility{}, err
	}
	var pt struct {
		BirthDate string `json:"birthDate"`
		Extension []struct {
			URL          string `json:"url"`
			ValueBoolean *bool  `json:"valueBoolean"`
		} `json:"extension"`
	}
	if err := json.Unmarshal(body, &pt); err != nil {
		return Eligibility{}, err
	}
	var hardship *bool
	for _, e := range pt.Extension {
		if e.URL == hardshipURL {
			hardship = e.ValueBoolean
		}
	}
	return decideAid(pt.BirthDate, hardship, on), nil
}

// decideAid applies the rule to a birth date (FHIR date, "" unknown) and
// financial-hardship (nil: not recorded) on day on.
func decideAid(birthDate string, hardship *bool, on time.Time) Eligibility {
	day := on.Format(time.DateOnly)
	var en, zh []string
	lo, hi, err := birthRange(birthDate)
	switch {
	case birthDate == "" || err != nil:
		en, zh = append(en, "the birth date is not recorded"), append(zh, "未记录出生日期")
	case hi.After(on):
		en, zh = append(en, "born after "+day), append(zh, day+" 时尚未出生")
	default:
		// The oldest the recipient may be (born lo) and the youngest (hi).
		oldest, youngest := ageOn(lo, on), ageOn(hi, on)
		in := func(age int) bool { return age < aidUnder || age > aidOver }
		switch {
		case in(oldest) != in(youngest):
			en = append(en, "the birth date "+birthDate+" does not tell the age on "+day+" closely enough")
			zh = append(zh, "出生日期 "+birthDate+" 不足以确定 "+day+" 时的年龄")
		case in(oldest):
			// eligible by age
		default:
			age := strconv.Itoa(oldest)
			if oldest != youngest {
				age = strconv.Itoa(youngest) + "-" + age
			}
			en = append(en, "aged "+age+" on "+day+", neither under 16 nor over 60")
			zh = append(zh, day+" 时 "+age+" 周岁，既非未满16周岁，也非超过60周岁（年满61周岁）")
		}
	}
	switch {
	case hardship == nil:
		en, zh = append(en, "financial hardship is not recorded"), append(zh, "未记录经济困难")
	case !*hardship:
		en, zh = append(en, "no financial hardship"), append(zh, "无经济困难")
	}
	if len(en) > 0 {
		return Eligibility{Reason: "Not eligible: " + strings.Join(en, "; ") + ". / 不符合条件：" + strings.Join(zh, "；") + "。"}
	}
	age := ageOn(lo, on)
	band, bandZh := "under 16", "未满16周岁"
	if age > aidOver {
		band, bandZh = "over 60", "超过60周岁"
	}
	a := strconv.Itoa(age)
	if y := ageOn(hi, on); y != age {
		a = strconv.Itoa(y) + "-" + a
	}
	return Eligibility{Eligible: true, Reason: "Eligible: aged " + a + " on " + day + " (" + band + ") with financial hardship. / 符合条件：" +
		day + " 时 " + a + " 周岁（" + bandZh + "），经济困难。"}
}

// parameters is e as a Parameters resource.
func (e Eligibility) parameters() ([]byte, error) {
	type param struct {
		Name         string `json:"name"`
		ValueBoolean *bool  `json:"valueBoolean,omitempty"`
		ValueString  string `json:"valueString,omitempty"`
	}
	eligible := e.Eligible
	return json.Marshal(struct {
		ResourceType string  `json:"resourceType"`
		Parameter    []param `json:"parameter"`
	}{ResourceType: "Parameters", Parameter: []param{{Name: "eligible", ValueBoolean: &eligible}, {Name: "reason", ValueString: e.Reason}}})
}
