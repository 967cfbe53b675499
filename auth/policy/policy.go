// Package policy is the access policy decision point of the server
// (design.md, "Authentication and access contract"; wmt-ig.md, "Who owns
// what"): access = tenant ∩ role ∩ SMART scope ∩ patient context. It
// implements fhir.Policy; the REST layer asks it about every interaction,
// search, returned resource and stored version, so the rules live here once.
package policy

//go:generate go run ./internal/gen -out compartment_gen.go

import (
	"net/url"
	"slices"
	"strings"

	"github.com/fmtbank/cmts/auth/deid"
	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/search"
	"github.com/fmtbank/cmts/store"
)

// Canonical URLs of the WMT profiles whose owner or reach the policy knows
// (wmt-ig.md).
const (
	profileBase = "http://fmtbank.org/fhir/StructureDefinition/"
	// DonorCodeSystem identifies a stool donor (wmt-ig.md, identifier systems).
	DonorCodeSystem = "http://fmtbank.org/fhir/sid/donor-code"
	// registrySystems prefixes the registry's own, pseudonymous identifier
	// systems, which the de-identified view keeps and may search.
	registrySystems = "http://fmtbank.org/fhir/sid/"
)

// Profiles only a stool bank writes, and profiles only a hospital writes.
var (
	bankProfiles = []string{"cmts-donor", "cmts-stool-donation", "cmts-microbiota-product",
		"cmts-product-qc", "cmts-donor-screening"}
	hospitalProfiles = []string{"cmts-recipient", "cmts-pretreatment-risk", "cmts-indication",
		"cmts-wmt-procedure", "cmts-efficacy", "cmts-adverse-event"}
)

// hidden are the search parameters that match on what the de-identified
// view removes (names, contact details, addresses, free text): a caller who
// sees a resource de-identified may not find it through them.
var hidden = map[string]bool{
	"name": true, "given": true, "family": true, "phonetic": true, "telecom": true,
	"phone": true, "email": true, "address": true, "address-city": true, "address-country": true,
	"address-postalcode": true, "address-state": true, "address-use": true,
	"_text": true, "_content": true,
}

// Policy decides access. The zero value is not usable; call New.
type Policy struct {
	engine *search.Engine
}

var _ fhir.Policy = (*Policy)(nil)

// New returns the policy; engine compiles the search parameters of SMART v2
// scopes (patient/Observation.rs?category=laboratory).
func New(engine *search.Engine) *Policy { return &Policy{engine: engine} }

// fullRole reports whether p has a role that works on its own tenant's data
// as written (clinician, bank staff, admin, a system client).
func fullRole(p *fhir.Principal) bool {
	return p.HasRole(fhir.RoleClinician) || p.HasRole(fhir.RoleBankStaff) ||
		p.HasRole(fhir.RoleAdmin) || p.HasRole(fhir.RoleSystem)
}

// crossRole reports whether p reads every tenant through the de-identified
// view (a regulator, a researcher running cohort queries).
func crossRole(p *fhir.Principal) bool {
	return p.HasRole(fhir.RoleRegulator) || p.HasRole(fhir.RoleResearcher)
}

var (
	msgNoRole = fhir.Message{EN: "The token carries no role that allows access to the registry",
		ZH: "令牌中没有允许访问登记系统的角色"}
	msgReadOnly = fhir.Message{EN: "This role reads the registry but may not change it",
		ZH: "该角色只能读取登记数据，不能修改"}
	msgAudit = fhir.Message{EN: "Only the admin role reads the audit trail; a system or an admin may add to it, and nobody changes it",
		ZH: "只有管理员角色可以读取审计记录；系统或管理员可以追加审计记录，任何人不能修改"}
)

func forbidden(m fhir.Message) *fhir.Error { return fhir.Forbidden(m.EN, m.ZH) }

// perms maps an interaction to the SMART v2 permission it needs.
func perm(a fhir.Action) (fhir.Interaction, bool) {
	switch a {
	case fhir.ActionRead, fhir.ActionVRead, fhir.ActionHistoryInstance:
		return fhir.Read, true
	case fhir.ActionSearchType, fhir.ActionSearchSystem, fhir.ActionHistoryType, fhir.ActionHistorySystem:
		return fhir.Search, true
	case fhir.ActionCreate:
		return fhir.Create, true
	case fhir.ActionUpdate, fhir.ActionPatch:
		return fhir.Update, true
	case fhir.ActionDelete:
		return fhir.Delete, true
	}
	return 0, false
}

func writing(i fhir.Interaction) bool {
	return i == fhir.Create || i == fhir.Update || i == fhir.Delete
}

// Allow implements fhir.Policy.
func (pol *Policy) Allow(p *fhir.Principal, a fhir.Action, typ string) error {
	if !fullRole(p) && !crossRole(p) {
		return forbidden(msgNoRole)
	}
	need, ok := perm(a)
	if !ok {
		// capabilities, transaction, batch, operations: a Bundle's entries
		// and an operation's reads and writes are decided one by one.
		return nil
	}
	if typ == "AuditEvent" {
		// The trail is append-only: a system or an admin may add events
		// (an EHR forwarding its own, as an IHE audit repository accepts
		// them), nobody changes or removes one; only an admin reads it.
		switch {
		case a == fhir.ActionCreate || a == fhir.ActionUpdate:
			if !p.HasRole(fhir.RoleAdmin) && !p.HasRole(fhir.RoleSystem) {
				return forbidden(msgAudit)
			}
		case writing(need) || !p.HasRole(fhir.RoleAdmin):
			return forbidden(msgAudit)
		}
	}
	if writing(need) && !fullRole(p) {
		return forbidden(msgReadOnly)
	}
	scopeType := typ
	if scopeType == "" {
		scopeType = "*"
	}
	if len(grants(p, scopeType, string(need))) == 0 {
		return noScope(need, scopeType)
	}
	return nil
}

func noScope(need fhir.Interaction, typ string) *fhir.Error {
	return fhir.Forbidden("The token's scopes do not allow '"+string(need)+"' on "+typ,
		"令牌的授权范围不允许对 "+typ+" 执行 '"+string(need)+"'")
}

// grants are p's scopes that allow one of the permissions in perms on typ
// ("*": a scope on every type); a patient/ scope counts only with a
// patient in context.
func grants(p *fhir.Principal, typ, perms string) []fhir.Scope {
	var out []fhir.Scope
	for _, g := range p.Grants {
		if g.Context == fhir.ScopePatient && p.Patient == "" {
			continue
		}
		if typ == "*" && g.ResourceType != "*" {
			continue
		}
		for i := 0; i < len(perms); i++ {
			if g.Allows(fhir.Interaction(perms[i]), typ) {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

// Access implements fhir.Policy: the caller's own tenant, and every tenant
// for a regulator or researcher (whose view of them is de-identified).
func (pol *Policy) Access(p *fhir.Principal) store.Access {
	return store.Access{Tenants: []string{p.Tenant}, Everyone: crossRole(p)}
}

// Deidentify implements fhir.Policy: what a caller sees of another tenant is
// de-identified, and all it sees is when its roles are only cross-tenant
// ones. A product lot holds no personal data and is shown as written; so
// is a consultation to the expert centre it is addressed to, which needs
// the clinical question and the patient's situation the hospital wrote
// for it (docs/consultation.md).
func (pol *Policy) Deidentify(p *fhir.Principal, v *store.Version) bool {
	if v.Reach == store.ReachShared {
		return false
	}
	if fullRole(p) && v.Addressee != "" && v.Addressee == p.Tenant {
		return false
	}
	return !fullRole(p) || v.Tenant != p.Tenant
}

// View implements fhir.Policy.
func (pol *Policy) View(p *fhir.Principal, v *store.Version) ([]byte, error) {
	if v.Resource == nil || !pol.Deidentify(p, v) {
		return v.Resource, nil
	}
	return deid.JSON(v.Resource)
}

// narrowing is the condition the grants put on resources of typ: nil and
// ok when some grant is unrestricted; ok false when none can match
// anything (a patient/ scope on a type outside the patient compartment).
func (pol *Policy) narrowing(p *fhir.Principal, typ string, gs []fhir.Scope) (store.Expr, bool, error) {
	var or store.Or
	for _, g := range gs {
		var and store.And
		if g.Context == fhir.ScopePatient {
			c, ok := compartment(typ, p.Patient)
			if !ok {
				continue
			}
			and = append(and, c)
		}
		if len(g.Params) > 0 {
			e, err := pol.engine.Compile(typ, g.Params)
			if err != nil {
				return nil, false, fhir.Forbidden("The token's scope "+g.ResourceType+"?"+g.Params.Encode()+" cannot be applied: "+err.Error(),
					"令牌的授权范围 "+g.ResourceType+"?"+g.Params.Encode()+" 无法应用")
			}
			if e != nil {
				and = append(and, e)
			}
		}
		switch len(and) {
		case 0:
			return nil, true, nil
		case 1:
			or = append(or, and[0])
		default:
			or = append(or, and)
		}
	}
	switch len(or) {
	case 0:
		return nil, false, nil
	case 1:
		return or[0], true, nil
	}
	return or, true, nil
}

// compartment is the condition "in the compartment of Patient/id" on typ.
func compartment(typ, id string) (store.Expr, bool) {
	if typ == "Patient" {
		return store.Or{store.ID{IDs: []string{id}}, store.Reference{Param: "link", Type: "Patient", ID: id}}, true
	}
	params := patientCompartment[typ]
	if len(params) == 0 {
		return nil, false
	}
	var or store.Or
	for _, param := range params {
		or = append(or, store.Reference{Param: param, Type: "Patient", ID: id})
	}
	if len(or) == 1 {
		return or[0], true
	}
	return or, true
}

// Narrow implements fhir.Policy.
func (pol *Policy) Narrow(p *fhir.Principal, typ string) (store.Expr, error) {
	scopeType := typ
	if scopeType == "" {
		scopeType = "*"
	}
	gs := grants(p, scopeType, string(fhir.Search))
	if len(gs) == 0 {
		return nil, noScope(fhir.Search, scopeType)
	}
	if typ == "" {
		for _, g := range gs {
			if g.Context != fhir.ScopePatient && len(g.Params) == 0 {
				return nil, nil
			}
		}
		return nil, fhir.Forbidden("The token's scopes are limited to a patient or to some resources; search one type at a time",
			"令牌的授权范围仅限于某个患者或部分资源；请按资源类型分别检索")
	}
	e, ok, err := pol.narrowing(p, typ, gs)
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, fhir.Forbidden("No "+typ+" is in the patient's compartment; the token's patient scopes do not reach it",
			typ+" 不属于患者区间，令牌的患者授权范围不包括它")
	}
	return e, nil
}

// CheckSearch implements fhir.Policy.
func (pol *Policy) CheckSearch(p *fhir.Principal, typ string, params url.Values, touched []string) error {
	for _, t := range touched {
		if t == "AuditEvent" && !p.HasRole(fhir.RoleAdmin) {
			return forbidden(msgAudit)
		}
		e, err := pol.Narrow(p, t)
		if err != nil {
			return err
		}
		if e != nil {
			// A chain or _has through a narrowed type would reveal what the
			// narrowing hides.
			return fhir.Forbidden("The token's scopes on "+t+" are limited; a chained or _has search through "+t+" is not allowed",
				"令牌对 "+t+" 的授权范围有限，不允许通过 "+t+" 进行链式或 _has 检索")
		}
	}
	if !crossRole(p) {
		return nil
	}
	// The de-identified view: no finding a resource, or ordering results,
	// by what the view removes.
	for key, values := range params {
		names := splitParam(key)
		if key == "_sort" {
			names = nil
			for _, v := range values {
				for _, k := range strings.Split(v, ",") {
					names = append(names, splitParam(strings.TrimPrefix(k, "-"))...)
				}
			}
		}
		for _, n := range names {
			if hidden[n] || (n == "identifier" && !registryValues(values)) {
				return fhir.Forbidden("The de-identified view cannot be searched by '"+key+"'",
					"去标识化视图不能按 '"+key+"' 检索")
			}
		}
	}
	return nil
}

// splitParam splits a parameter name into its parts: the chain links, the
// modifiers, the _has segments.
func splitParam(key string) []string {
	return strings.FieldsFunc(key, func(r rune) bool { return r == '.' || r == ':' })
}

// registryValues reports whether every identifier value names one of the
// registry's own systems.
func registryValues(values []string) bool {
	for _, v := range values {
		for _, one := range strings.Split(v, ",") {
			if !strings.HasPrefix(one, registrySystems) {
				return false
			}
		}
	}
	return len(values) > 0
}

// Readable implements fhir.Policy.
func (pol *Policy) Readable(p *fhir.Principal, v *store.Version) bool {
	if !pol.Access(p).Sees(v.Tenant, v.Reach, v.Addressee) {
		return false
	}
	if v.Type == "AuditEvent" && !p.HasRole(fhir.RoleAdmin) {
		return false
	}
	if !fullRole(p) && !crossRole(p) {
		return false
	}
	gs := grants(p, v.Type, string(fhir.Read)+string(fhir.Search))
	if len(gs) == 0 {
		return false
	}
	return pol.matches(p, v, gs)
}

// matches reports whether v is within what the grants allow.
func (pol *Policy) matches(p *fhir.Principal, v *store.Version, gs []fhir.Scope) bool {
	e, ok, err := pol.narrowing(p, v.Type, gs)
	switch {
	case err != nil || !ok:
		return false
	case e == nil:
		return true
	case v.Deleted:
		// A tombstone has no content to check against the narrowing.
		return false
	}
	m, err := store.Match(e, pol.indexed(v), nil)
	return err == nil && m
}

// indexed is v with its index entries: the store returns versions without
// them, so they are computed from the body when a rule needs them.
func (pol *Policy) indexed(v *store.Version) *store.Version {
	if v.Index != nil || v.Resource == nil {
		return v
	}
	idx, err := pol.engine.Entries(v.Type, v.Resource)
	if err != nil {
		return v
	}
	w := *v
	w.Index = idx
	return &w
}

// Writable implements fhir.Policy.
func (pol *Policy) Writable(p *fhir.Principal, cur, next *store.Version) error {
	if !fullRole(p) {
		if crossRole(p) {
			return forbidden(msgReadOnly)
		}
		return forbidden(msgNoRole)
	}
	if next.Type == "AuditEvent" && (cur != nil || next.Deleted || (!p.HasRole(fhir.RoleAdmin) && !p.HasRole(fhir.RoleSystem))) {
		return forbidden(msgAudit)
	}
	if cur != nil && !cur.Deleted && addressed(p, cur) {
		return pol.addresseeWrites(p, cur, next)
	}
	if next.Tenant != p.Tenant || (cur != nil && cur.Tenant != p.Tenant) {
		return fhir.Forbidden("A caller writes only its own tenant's resources", "只能写入本单位的资源")
	}
	need := fhir.Update
	switch {
	case next.Deleted:
		need = fhir.Delete
	case cur == nil || cur.Deleted:
		need = fhir.Create
	}
	gs := grants(p, next.Type, string(need))
	if len(gs) == 0 {
		return noScope(need, next.Type)
	}
	if cur != nil && !cur.Deleted && !pol.matches(p, cur, gs) {
		return fhir.Forbidden("The resource is outside what the token's scopes allow", "该资源超出令牌授权范围")
	}
	if !next.Deleted && !pol.matches(p, next, gs) {
		return fhir.Forbidden("The new content is outside what the token's scopes allow (patient compartment or scope parameters)",
			"新内容超出令牌授权范围（患者区间或授权参数）")
	}
	shown := next
	if next.Deleted && cur != nil {
		shown = pol.indexed(cur)
	}
	profiles := profilesOf(shown)
	switch p.TenantKind {
	case fhir.TenantHospital:
		if pr := firstOf(profiles, bankProfiles); pr != "" {
			return fhir.Forbidden("Only a stool bank writes "+pr+" resources", "只有粪菌库可以写入 "+pr+" 资源")
		}
	case fhir.TenantBank:
		if pr := firstOf(profiles, hospitalProfiles); pr != "" {
			return fhir.Forbidden("Only a treating hospital writes "+pr+" resources", "只有治疗医院可以写入 "+pr+" 资源")
		}
	}
	if next.Deleted && cur != nil {
		next.Reach, next.Addressee = cur.Reach, cur.Addressee
	} else {
		next.Reach, next.Addressee = Reach(next), Addressee(next)
	}
	return requesterWrites(cur, next)
}

// profilesOf lists the WMT profile names (cmts-...) v claims.
func profilesOf(v *store.Version) []string {
	var out []string
	for _, e := range v.Index {
		if e.Param == "_profile" && strings.HasPrefix(e.Value, profileBase) {
			name, _, _ := strings.Cut(strings.TrimPrefix(e.Value, profileBase), "|")
			out = append(out, name)
		}
	}
	return out
}

func firstOf(have, among []string) string {
	for _, h := range have {
		if slices.Contains(among, h) {
			return h
		}
	}
	return ""
}

// Reach is who besides its tenant may read v (wmt-ig.md, "Who owns what"):
// every tenant reads a product lot; nobody outside the bank reads a donor
// (by profile, or by a donor code on a Patient), nor another tenant's audit
// trail; the rest the regulator may read, de-identified.
func Reach(v *store.Version) store.Reach {
	profiles := profilesOf(v)
	switch {
	case slices.Contains(profiles, "cmts-microbiota-product"):
		return store.ReachShared
	case slices.Contains(profiles, "cmts-donor"), v.Type == "AuditEvent":
		return store.ReachOwner
	case v.Type == "Patient":
		for _, e := range v.Index {
			if e.Param == "identifier" && e.System == DonorCodeSystem {
				return store.ReachOwner
			}
		}
	}
	return store.ReachTenant
}

// bankStaff reports whether p works for a stool bank on its data as
// written.
func bankStaff(p *fhir.Principal) bool {
	return p.TenantKind == fhir.TenantBank && fullRole(p)
}

// TraceView implements fhir.Policy: what p reads, as View shows it; and for
// a stool bank, another tenant's resource the trace reached (never one
// only its owner reads, such as another bank's donor), de-identified, when
// its scopes allow reading that type.
func (pol *Policy) TraceView(p *fhir.Principal, v *store.Version) ([]byte, bool, error) {
	if v.Deleted || v.Resource == nil {
		return nil, false, nil
	}
	if pol.Readable(p, v) {
		b, err := pol.View(p, v)
		return b, err == nil, err
	}
	if !bankStaff(p) || v.Reach == store.ReachOwner || v.Type == "AuditEvent" {
		return nil, false, nil
	}
	// A patient/ scope stays within its patient, who is the bank's own.
	for _, g := range grants(p, v.Type, string(fhir.Read)+string(fhir.Search)) {
		if g.Context != fhir.ScopePatient && len(g.Params) == 0 {
			b, err := deid.JSON(v.Resource)
			return b, err == nil, err
		}
	}
	return nil, false, nil
}

// PatientCompartment names the reference parameters that put a resource of
// typ in a patient's compartment (the R4 CompartmentDefinition "patient";
// a Patient is in its own); nil when typ is not in it.
func PatientCompartment(typ string) []string { return slices.Clone(patientCompartment[typ]) }
