// Package synth generates a synthetic WMT registry: stool banks with donor
// candidates, screening, donations, product lots with QC and a release
// history, and hospitals with recipients, indications, risk assessments,
// transplantation courses, efficacy follow-up and adverse events, every
// resource valid to the guide's profiles (package profiles). The same seed
// gives the same registry byte for byte: ids, bodies and timestamps come
// from a fixed clock and a PCG seeded from it, never from the wall clock.
// Truth states the figures every report should find in it.
package synth

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"time"
)

// epoch and now bound the registry's business time: the first procedure is
// on or after epoch, and nothing happens after now (the registry is as it
// stood then; Truth.Now). Times are Beijing time. Never changed.
var (
	epoch = time.Date(2022, 1, 1, 0, 0, 0, 0, beijing)
	now   = time.Date(2026, 7, 1, 0, 0, 0, 0, beijing)
)

// Options choose a registry.
type Options struct {
	// Patients is the number of recipients (> 0).
	Patients int
	// Seed selects the registry; the same seed, the same registry.
	Seed uint64
}

// Registry is a generated registry, kept compact; its resources are
// rendered on demand (Resource), in parallel if the caller wishes.
type Registry struct {
	opts       Options
	donors     []donor
	donations  []donation
	lots       []lot
	recipients []recipient
	// writes lists every resource version in write order.
	writes []ref
	// phaseEnd[i] is the end of phase i in writes: every resource's
	// version i+1 is in phase i, so a phase never holds two versions of one
	// resource and each phase follows the one before.
	phaseEnd []int
}

type donor struct {
	bank          int
	candidate     time.Time // enrolled as a candidate
	decided       time.Time // screening finished
	qualified     bool
	activeUntil   time.Time
	gender        string
	birth         time.Time
	name          name
	screens       []screen
	firstScreenID int // index of its first screening in the registry's numbering
}

type screen struct {
	stage, test int
	at          time.Time
	pass        bool
}

type donation struct {
	donor int
	at    time.Time
}

type lot struct {
	bank, donor  int
	donations    []int
	capsule      bool
	made, expiry time.Time
	released     time.Time // zero: never released (discarded)
	discarded    time.Time
	recalled     time.Time
	viable       float64 // bacteria per unit, 1e13 scale
	firstQC      int
}

type name struct{ zhFamily, zhGiven, enFamily, enGiven string }

type recipient struct {
	hospital   int
	gender     string
	birth      time.Time
	name       name
	hardship   bool
	indication int
	route      string
	risk       time.Time
	riskLevel  string
	procs      []proc
	efficacy   []efficacy
	events     []event
}

type proc struct {
	course, session int
	at              time.Time
	lots            []int
	dose            int
}

type efficacy struct {
	followUp int // index into followUps
	at       time.Time
	measure  string
	boolean  bool
	value    int
	isBool   bool
	focus    int // index of the assessed procedure in procs
}

type event struct {
	term                           int
	at                             time.Time
	suspects                       []int // indices into procs
	severity, relatedness, outcome string
	grade                          int
	serious                        bool
}

// kind names what a ref points at.
type kind uint8

const (
	kOrg kind = iota
	kDonor
	kScreen
	kDonation
	kLot
	kQC
	kRecipient
	kCondition
	kRisk
	kProc
	kEfficacy
	kEvent
)

// ref is one resource version to render: what, which (index), sub-index
// (within a donor or a recipient), version.
type ref struct {
	kind    kind
	version uint8
	i, j    int32
}

// rng is a PCG stream for one part of the registry: the seed and a label,
// so that parts are independent of each other and of the order they are
// made in.
func rng(seed uint64, part, i uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed^0x9e3779b97f4a7c15*(part+1), i*0xbf58476d1ce4e5b9+part))
}

func pick(r *rand.Rand, ws []float64) int {
	x := r.Float64()
	for i, w := range ws {
		if x < w {
			return i
		}
		x -= w
	}
	return len(ws) - 1
}

func pickW(r *rand.Rand, ws []weighted) string {
	x := r.Float64()
	for _, w := range ws {
		if x < w.w {
			return w.code
		}
		x -= w.w
	}
	return ws[len(ws)-1].code
}

func days(n float64) time.Duration { return time.Duration(n * 24 * float64(time.Hour)) }

// between is a time uniform in [a, b), to the minute.
func between(r *rand.Rand, a, b time.Time) time.Time {
	if !b.After(a) {
		return a
	}
	return a.Add(time.Duration(r.Int64N(int64(b.Sub(a)/time.Minute))) * time.Minute)
}

// dayAt is t's Beijing date at hh:mm plus up to spread minutes.
func dayAt(r *rand.Rand, t time.Time, hh, mm, spread int) time.Time {
	t = t.In(beijing)
	d := time.Date(t.Year(), t.Month(), t.Day(), hh, mm, 0, 0, beijing)
	if spread > 0 {
		d = d.Add(time.Duration(r.IntN(spread)) * time.Minute)
	}
	return d
}

func newName(r *rand.Rand) name {
	s := surnames[r.IntN(len(surnames))]
	n := name{zhFamily: s[0], enFamily: s[1]}
	for k := 0; k < 1+r.IntN(2); k++ {
		g := givenChars[r.IntN(len(givenChars))]
		n.zhGiven += g[0]
		if n.enGiven == "" {
			n.enGiven = g[1]
		} else {
			n.enGiven += lower(g[1])
		}
	}
	return n
}

func lower(s string) string {
	b := []byte(s)
	if len(b) > 0 && b[0] >= 'A' && b[0] <= 'Z' {
		b[0] += 'a' - 'A'
	}
	return string(b)
}

// Generate makes the registry of opts. Errors: Patients not positive.
func Generate(opts Options) (*Registry, error) {
	if opts.Patients <= 0 {
		return nil, errors.New("synth: the number of patients must be positive")
	}
	g := &Registry{opts: opts}
	// The expected number of procedures sets the bank's production.
	expProcs := float64(opts.Patients) * 3.4
	for b := range banks {
		share := 0.0
		for h, s := range hospitalShare {
			share += s * bankOf[h][b]
		}
		g.makeBank(b, max(12, int(math.Ceil(expProcs*share/procsPerLot))))
	}
	if err := g.makeRecipients(); err != nil {
		return nil, err
	}
	g.order()
	return g, nil
}

// makeBank makes bank b's donors (candidates screened until enough
// qualify), donations and nLots lots.
func (g *Registry) makeBank(b, nLots int) {
	r := rng(g.opts.Seed, 1, uint64(b))
	nQual := max(3, int(math.Ceil(float64(nLots)/lotsPerDonor)))
	// Qualified donors are staggered over the whole period so that every
	// day has a few active ones; the first qualify before epoch.
	from, to := epoch.Add(-days(240)), now.Add(-days(60))
	slot := to.Sub(from) / time.Duration(nQual)
	firstDonor := len(g.donors)
	for q := 0; q < nQual; {
		d := donor{bank: b, gender: []string{"male", "female"}[r.IntN(2)], name: newName(r)}
		d.birth = between(r, now.AddDate(-45, 0, 0), now.AddDate(-20, 0, 0))
		d.candidate = between(r, from, to)
		// Decide the outcome first: a candidate that will qualify takes the
		// next slot of the schedule.
		failAt := -1
		for s, st := range screenStages {
			if r.Float64() >= st.pass {
				failAt = s
				break
			}
		}
		if failAt < 0 {
			d.candidate = dayAt(r, from.Add(slot*time.Duration(q)), 9, 0, 120)
			d.qualified = true
			d.activeUntil = d.candidate.Add(slot * 4)
			q++
		} else {
			d.candidate = dayAt(r, d.candidate, 9, 0, 120)
		}
		at := d.candidate
		for s, st := range screenStages {
			if failAt >= 0 && s > failAt {
				break
			}
			at = dayAt(r, at.Add(days(float64(1+r.IntN(6)))), 8, 30, 240)
			bad := -1
			if s == failAt {
				bad = r.IntN(len(st.tests))
			}
			for t := range st.tests {
				d.screens = append(d.screens, screen{stage: s, test: t, at: at, pass: t != bad})
			}
		}
		d.decided = at.Add(days(1))
		g.donors = append(g.donors, d)
	}
	// Lots, evenly over [epoch-60d, now-5d], each from a donor active then;
	// suspensions and capsules each on a schedule dense enough (a lot every
	// maxLotGap at least) that a procedure always finds a released lot.
	lfrom, lto := epoch.Add(-days(60)), now.Add(-days(5))
	span := lto.Sub(lfrom)
	minPerKind := int(span/(maxLotGap*24*time.Hour)) + 1
	nCaps := max(minPerKind, int(float64(nLots)*capsuleShare))
	nSusp := max(minPerKind, nLots-nCaps)
	type plan struct {
		made    time.Time
		capsule bool
	}
	var plans []plan
	for k := range nSusp {
		plans = append(plans, plan{lfrom.Add(span / time.Duration(nSusp) * time.Duration(k)), false})
	}
	for k := range nCaps {
		plans = append(plans, plan{lfrom.Add(span/time.Duration(nCaps)*time.Duration(k) + span/time.Duration(2*nCaps)), true})
	}
	sort.SliceStable(plans, func(x, y int) bool { return plans[x].made.Before(plans[y].made) })
	for _, pl := range plans {
		made := dayAt(r, pl.made, 10, 0, 180)
		l := lot{bank: b, made: made, capsule: pl.capsule}
		var active []int
		for i := firstDonor; i < len(g.donors); i++ {
			d := &g.donors[i]
			if d.qualified && d.decided.Before(made.Add(-days(1))) && made.Before(d.activeUntil) {
				active = append(active, i)
			}
		}
		if len(active) == 0 {
			// Before the schedule has overlap: the earliest qualified donor.
			for i := firstDonor; i < len(g.donors); i++ {
				if g.donors[i].qualified {
					active = append(active, i)
					break
				}
			}
		}
		l.donor = active[r.IntN(len(active))]
		if made.Before(g.donors[l.donor].decided.Add(days(1))) {
			made = dayAt(r, g.donors[l.donor].decided.Add(days(2)), 10, 0, 180)
			l.made = made
		}
		n := 1
		if r.Float64() < 0.1 {
			n = 2
		}
		for k := n; k > 0; k-- {
			g.donations = append(g.donations, donation{donor: l.donor, at: dayAt(r, made.Add(-days(float64(k-1))), 7, 0, 60)})
			l.donations = append(l.donations, len(g.donations)-1)
		}
		shelf := suspensionDays
		if l.capsule {
			shelf = capsuleDays
		}
		l.expiry = dayAt(r, made.AddDate(0, 0, shelf), 0, 0, 0)
		l.viable = 0.8 + r.Float64()*0.5
		qcDone := dayAt(r, made.Add(days(float64(2+r.IntN(3)))), 14, 0, 180)
		if r.Float64() < discardRate {
			l.discarded = qcDone
		} else {
			l.released = qcDone
			if r.Float64() < recallRate {
				if rc := dayAt(r, qcDone.Add(days(float64(10+r.IntN(140)))), 11, 0, 240); rc.Before(now) {
					l.recalled = rc
				}
			}
		}
		g.lots = append(g.lots, l)
	}
}

// lotIndex lists, per bank and product kind (suspension, capsule), the
// released lots in order of release.
type lotIndex [][2][]int

func (g *Registry) indexLots() lotIndex {
	idx := make(lotIndex, len(banks))
	for i, l := range g.lots {
		if l.released.IsZero() {
			continue
		}
		c := 0
		if l.capsule {
			c = 1
		}
		idx[l.bank][c] = append(idx[l.bank][c], i)
	}
	for b := range idx {
		for c := range 2 {
			s := idx[b][c]
			sort.SliceStable(s, func(x, y int) bool { return g.lots[s[x]].released.Before(g.lots[s[y]].released) })
		}
	}
	return idx
}

// usable reports whether lot l was released, not recalled and not expired
// at t.
func (l *lot) usable(t time.Time) bool {
	return !l.released.IsZero() && l.released.Before(t) && t.Before(l.expiry) && (l.recalled.IsZero() || t.Before(l.recalled))
}

// pickLot chooses a lot of bank b usable at t, most likely a recent one.
func (g *Registry) pickLot(r *rand.Rand, idx lotIndex, b int, capsule bool, t time.Time) (int, bool) {
	c := 0
	if capsule {
		c = 1
	}
	for _, bank := range []int{b, 1 - b} {
		s := idx[bank][c]
		k := sort.Search(len(s), func(i int) bool { return !g.lots[s[i]].released.Before(t) }) - 1
		if k < 0 {
			continue
		}
		if try := k - r.IntN(min(k+1, 8)); g.lots[s[try]].usable(t) {
			return s[try], true
		}
		for stop := max(k-400, 0); k >= stop; k-- {
			if g.lots[s[k]].usable(t) {
				return s[k], true
			}
		}
	}
	return 0, false
}

func (g *Registry) makeRecipients() error {
	idx := g.indexLots()
	shares := make([]float64, len(indications))
	for i, ind := range indications {
		shares[i] = ind.share
	}
	g.recipients = make([]recipient, g.opts.Patients)
	for p := range g.recipients {
		r := rng(g.opts.Seed, 2, uint64(p))
		rc := recipient{hospital: pick(r, hospitalShare), indication: pick(r, shares), name: newName(r)}
		ind := &indications[rc.indication]
		rc.gender = []string{"male", "female"}[r.IntN(2)]
		start := dayAt(r, between(r, epoch, now.Add(-days(14))), 8, 30, 7*60)
		age := ind.minAge + r.IntN(ind.maxAge-ind.minAge+1)
		rc.birth = start.AddDate(-age, 0, -r.IntN(365))
		rc.hardship = r.Float64() < 0.15
		rc.route = pickW(r, ind.routes)
		rc.risk = dayAt(r, start.Add(-days(float64(1+r.IntN(7)))), 9, 0, 420)
		rc.riskLevel = pickW(r, []weighted{{"low", 0.7}, {"moderate", 0.25}, {"high", 0.05}})
		rt := routes[rc.route]
		courses := 1 + pick(r, ind.courses)
		at := start
		for c := 1; c <= courses; c++ {
			if c > 1 {
				at = dayAt(r, at.Add(days(float64(28+r.IntN(15)))), 8, 30, 7*60)
			}
			n := 1 + pick(r, rt.sessions)
			if at.Add(days(float64(n))).After(now) {
				break
			}
			bank := pick(r, bankOf[rc.hospital])
			for s := 1; s <= n; s++ {
				t := at
				if s > 1 {
					t = dayAt(r, at.Add(days(float64(s-1))), 8, 30, 7*60)
				}
				pr := proc{course: c, session: s, at: t, dose: rt.minDose + r.IntN(rt.maxDose-rt.minDose+1)}
				l, ok := g.pickLot(r, idx, bank, rt.capsule, t)
				if !ok {
					return fmt.Errorf("synth: no lot released at %s", dateTime(t))
				}
				pr.lots = []int{l}
				if pr.dose >= rt.maxDose-1 && r.Float64() < 0.3 {
					if l2, ok := g.pickLot(r, idx, bank, rt.capsule, t); ok && l2 != l {
						pr.lots = append(pr.lots, l2)
					}
				}
				rc.procs = append(rc.procs, pr)
			}
		}
		rc.events = makeEvents(r, &rc)
		rc.efficacy = makeEfficacy(r, &rc)
		g.recipients[p] = rc
	}
	return nil
}

// makeEvents draws the adverse events after each procedure.
func makeEvents(r *rand.Rand, rc *recipient) []event {
	rt := routes[rc.route]
	p := aeBase * rt.aeMult * indications[rc.indication].aeMult
	var out []event
	for i, pr := range rc.procs {
		if r.Float64() >= p {
			continue
		}
		n := 1
		if r.Float64() < 0.08 {
			n = 2
		}
		used := map[int]bool{}
		for range n {
			ws := make([]float64, len(aeTerms))
			sum := 0.0
			for k, t := range aeTerms {
				ws[k] = t.lower
				if rt.upper {
					ws[k] = t.upper
				}
				if used[k] {
					ws[k] = 0
				}
				sum += ws[k]
			}
			for k := range ws {
				ws[k] /= sum
			}
			term := pick(r, ws)
			used[term] = true
			e := event{term: term, suspects: []int{i}}
			// An event after the later session of a course may be put down
			// to both sessions.
			if pr.session > 1 && r.Float64() < 0.12 {
				e.suspects = []int{i - 1, i}
			}
			e.at = pr.at.Add(time.Duration(120+r.IntN(60*60)) * time.Minute)
			if !e.at.Before(now) {
				e.at = pr.at.Add(time.Hour)
			}
			e.relatedness = pickW(r, relatedness)
			switch pick(r, []float64{0.80, 0.17, 0.03}) {
			case 0:
				e.severity, e.grade = "mild", 1
				e.outcome = pickW(r, []weighted{{"resolved", 0.95}, {"recovering", 0.05}})
			case 1:
				e.severity, e.grade = "moderate", 2
				e.outcome = pickW(r, []weighted{{"resolved", 0.85}, {"recovering", 0.10}, {"ongoing", 0.05}})
			default:
				e.severity, e.grade = "severe", 3
				if r.Float64() < 0.15 {
					e.grade = 4
				}
				e.outcome = pickW(r, []weighted{{"resolved", 0.70}, {"recovering", 0.15}, {"resolvedWithSequelae", 0.10}, {"unknown", 0.05}})
			}
			e.serious = e.grade >= 3
			out = append(out, e)
		}
	}
	return out
}

// makeEfficacy draws the assessments at each follow-up time point after the
// last procedure of the last course; a visit is missed (nothing recorded)
// with the time point's chance, and visits after now are not yet due.
func makeEfficacy(r *rand.Rand, rc *recipient) []efficacy {
	if len(rc.procs) == 0 {
		return nil
	}
	ind := &indications[rc.indication]
	last := len(rc.procs) - 1
	responder := r.Float64() < ind.response
	remitter := responder && r.Float64() < 0.6
	var out []efficacy
	for f, fu := range followUps {
		at := dayAt(r, rc.procs[last].at.Add(days(float64(fu.day+r.IntN(2*fu.win+1)-fu.win))), 9, 0, 480)
		if !at.Before(now) {
			break
		}
		if r.Float64() < fu.missed {
			continue
		}
		resp := responder != (r.Float64() < 0.1)
		add := func(e efficacy) {
			e.followUp, e.at, e.focus = f, at, last
			out = append(out, e)
		}
		// The disease score the response is judged by rides along as a
		// component of the response, one Observation a visit fewer.
		score := 0
		switch ind.score {
		case "partial-mayo":
			score = 5 + r.IntN(5)
			if resp {
				score = r.IntN(4)
			}
		case "hbi":
			score = 6 + r.IntN(10)
			if resp {
				score = r.IntN(5)
			}
		case "ibs-sss":
			score = 200 + r.IntN(250)
			if resp {
				score = 50 + r.IntN(150)
			}
		case "csbm-per-week":
			score = r.IntN(3)
			if resp {
				score = 3 + r.IntN(5)
			}
		}
		add(efficacy{measure: "clinical-response", isBool: true, boolean: resp, value: score})
		if ind.remission && fu.day >= 84 {
			add(efficacy{measure: "clinical-remission", isBool: true, boolean: remitter && resp})
		}
		if ind.code == "A04.7" && fu.code == "w8" {
			add(efficacy{measure: "cdi-cure", isBool: true, boolean: resp})
		}
	}
	return out
}

// order lists every version to write, phase by phase.
func (g *Registry) order() {
	w := g.writes[:0]
	add := func(k kind, v uint8, i, j int) { w = append(w, ref{kind: k, version: v, i: int32(i), j: int32(j)}) }
	// Phase 1: every resource's first version.
	for i := range len(banks) + len(hospitals) + 1 {
		add(kOrg, 1, i, 0)
	}
	nScreen, nQC := 0, 0
	for i := range g.donors {
		g.donors[i].firstScreenID = nScreen
		add(kDonor, 1, i, 0)
		for j := range g.donors[i].screens {
			add(kScreen, 1, i, j)
		}
		nScreen += len(g.donors[i].screens)
	}
	for i := range g.donations {
		add(kDonation, 1, i, 0)
	}
	for i := range g.lots {
		g.lots[i].firstQC = nQC
		add(kLot, 1, i, 0)
		for j := range g.lots[i].qcCount() {
			add(kQC, 1, i, j)
		}
		nQC += g.lots[i].qcCount()
	}
	end1 := len(w)
	// Phase 2: donors' screening outcome, lots' release or discard.
	for i := range g.donors {
		add(kDonor, 2, i, 0)
	}
	for i := range g.lots {
		add(kLot, 2, i, 0)
	}
	end2 := len(w)
	// Phase 3: recalls, then the hospitals' records (a procedure after its
	// lot's release: the order a live registry would see).
	for i := range g.lots {
		if !g.lots[i].recalled.IsZero() {
			add(kLot, 3, i, 0)
		}
	}
	for i := range g.recipients {
		rc := &g.recipients[i]
		add(kRecipient, 1, i, 0)
		add(kCondition, 1, i, 0)
		add(kRisk, 1, i, 0)
		for j := range rc.procs {
			add(kProc, 1, i, j)
		}
		for j := range rc.efficacy {
			add(kEfficacy, 1, i, j)
		}
		for j := range rc.events {
			add(kEvent, 1, i, j)
		}
	}
	g.writes = slices.Clip(w)
	g.phaseEnd = []int{end1, end2, len(w)}
}

// qcCount is the number of QC results of a lot: viable count and pathogen
// screen, and the re-test of a retained aliquot that led to a recall.
func (l *lot) qcCount() int {
	if !l.recalled.IsZero() {
		return 3
	}
	return 2
}

// Len is the number of resource versions the registry holds.
func (g *Registry) Len() int { return len(g.writes) }

// Batches splits [0, Len) into ranges of at most size versions, none of
// which holds two versions of one resource; writing the ranges in order,
// each as one transaction, stores the registry.
func (g *Registry) Batches(size int) [][2]int {
	var out [][2]int
	start := 0
	for _, end := range g.phaseEnd {
		for a := start; a < end; a += size {
			out = append(out, [2]int{a, min(a+size, end)})
		}
		start = end
	}
	return out
}
