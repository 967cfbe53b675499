// Package audit makes the audit trail of the server: one FHIR R4 AuditEvent
// per interaction, in the shape of the IHE Basic Audit Log Patterns (BALP,
// "RESTful activities"), stored in the store beside the data. Writes are
// audited in the same atomic store write as the data (Hook); everything
// else is queued and written in batches (Batcher). docs/audit.md says what
// is recorded.
//
// An AuditEvent names who (client, user, tenant), what (resource type, id,
// version; the names of the query parameters, never their values) and the
// outcome. It never holds a name, free text or anything from a resource body.
//
// Wiring, in cmd/cmts and the REST layer:
//
//	m := &audit.Maker{Server: audit.Server{BaseURL: base}, Indexer: engine}
//	b, _ := audit.NewBatcher(audit.BatcherOptions{Store: st, Maker: m, Logger: log})
//	hook, _ := audit.NewHook(m, b)
//	w, _ := bundle.NewWriter(bundle.Options{..., Auditor: hook})
//	// per request: ctx = audit.NewContext(ctx, audit.Client{Remote: ip, RequestID: id})
//	// after a request not audited by the writer: b.Add(audit.Record{...})
//	// at shutdown, after the HTTP server drained: b.Close(ctx), then the store.
package audit

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fmtbank/cmts/fhir"
)

// Interaction is what a request did, as a code of
// http://hl7.org/fhir/restful-interaction (AuditEvent.subtype): the
// fhir.Action the access policy decided on.
type Interaction = fhir.Action

// The interactions of R4 http.html.
const (
	Read            = fhir.ActionRead
	VRead           = fhir.ActionVRead
	Update          = fhir.ActionUpdate
	Patch           = fhir.ActionPatch
	Delete          = fhir.ActionDelete
	HistoryInstance = fhir.ActionHistoryInstance
	HistoryType     = fhir.ActionHistoryType
	HistorySystem   = fhir.ActionHistorySystem
	Create          = fhir.ActionCreate
	SearchType      = fhir.ActionSearchType
	SearchSystem    = fhir.ActionSearchSystem
	Capabilities    = fhir.ActionCapabilities
	Transaction     = fhir.ActionTransaction
	Batch           = fhir.ActionBatch
	Operation       = fhir.ActionOperation
)

// Code systems and identifier systems the events use.
const (
	systemEventType   = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	systemInteraction = "http://hl7.org/fhir/restful-interaction"
	systemDICOM       = "http://dicom.nema.org/resources/ontology/DCM"
	systemProvenance  = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
	systemParticipant = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
	systemOrgType     = "http://terminology.hl7.org/CodeSystem/organization-type"
	systemSourceType  = "http://terminology.hl7.org/CodeSystem/security-source-type"
	systemEntityType  = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	systemObjectRole  = "http://terminology.hl7.org/CodeSystem/object-role"
	systemBALPEntity  = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
	systemURI         = "urn:ietf:rfc:3986"
	// TenantSystem identifies a contributing unit by its tenant id
	// (wmt-ig.md); the tenant agent of every event carries it, so
	// AuditEvent?agent:identifier=http://fmtbank.org/fhir/sid/tenant|hospital-a
	// finds a unit's events.
	TenantSystem = "http://fmtbank.org/fhir/sid/tenant"
)

// Record is one interaction, as the REST layer (or the bundle writer) saw
// it. It is plain data; Event turns it into an AuditEvent.
type Record struct {
	Interaction Interaction
	// Principal is who made the request (nil: not authenticated).
	Principal *fhir.Principal
	// Remote is the client's network address (an IP address), "" when
	// unknown.
	Remote string
	// RequestID is the request's X-Request-Id, if any; kept only when it
	// looks like an id (letters, digits, - _ . :, up to 128).
	RequestID string
	// Time is when the interaction was answered.
	Time time.Time
	// Status is the HTTP status of the answer.
	Status int
	// Type, ID and Version name the resource acted on, as far as known
	// ("" for none; Version "" for the current one).
	Type, ID, Version string
	// Operation is the operation's name with its "$" ("$export"), for
	// Interaction Operation.
	Operation string
	// Query is the request's query string (or search form body) as sent;
	// only the parameter names are recorded, never the values.
	Query string
	// Patients are ids of Patients the interaction concerns beyond the
	// principal's patient context (e.g. the compartment searched); each
	// becomes a patient entity. Ids only: never a name.
	Patients []string
	// Written are the versions a transaction stored ("Type/id/_history/v"),
	// each an entity of the one event that records the transaction.
	Written []string
}

// Server is the recording server: the BALP server agent and the event's
// source.observer.
type Server struct {
	// BaseURL is the server's FHIR base (https://cmts.example.org/fhir), or
	// another stable name of this deployment.
	BaseURL string
}

// AuditEvent is the R4 AuditEvent the package writes (the elements used).
type AuditEvent struct {
	ResourceType string   `json:"resourceType"`
	ID           string   `json:"id,omitempty"`
	Meta         *Meta    `json:"meta,omitempty"`
	Type         Coding   `json:"type"`
	Subtype      []Coding `json:"subtype,omitempty"`
	Action       string   `json:"action,omitempty"`
	Recorded     string   `json:"recorded"`
	Outcome      string   `json:"outcome,omitempty"`
	OutcomeDesc  string   `json:"outcomeDesc,omitempty"`
	Agent        []Agent  `json:"agent"`
	Source       Source   `json:"source"`
	Entity       []Entity `json:"entity,omitempty"`
}

// Meta is Resource.meta.
type Meta struct {
	VersionID   string `json:"versionId,omitempty"`
	LastUpdated string `json:"lastUpdated,omitempty"`
}

// Coding is an R4 Coding.
type Coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

// CodeableConcept is an R4 CodeableConcept.
type CodeableConcept struct {
	Coding []Coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

// Identifier is an R4 Identifier (system and value).
type Identifier struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value,omitempty"`
}

// Reference is an R4 Reference.
type Reference struct {
	Reference  string      `json:"reference,omitempty"`
	Type       string      `json:"type,omitempty"`
	Identifier *Identifier `json:"identifier,omitempty"`
	Display    string      `json:"display,omitempty"`
}

// Agent is AuditEvent.agent.
type Agent struct {
	Type      *CodeableConcept  `json:"type,omitempty"`
	Role      []CodeableConcept `json:"role,omitempty"`
	Who       *Reference        `json:"who,omitempty"`
	Requestor bool              `json:"requestor"`
	Network   *Network          `json:"network,omitempty"`
}

// Network is AuditEvent.agent.network.
type Network struct {
	Address string `json:"address,omitempty"`
	// Type: 1 machine name, 2 IP address, 5 URI.
	Type string `json:"type,omitempty"`
}

// Source is AuditEvent.source.
type Source struct {
	Site     string    `json:"site,omitempty"`
	Observer Reference `json:"observer"`
	Type     []Coding  `json:"type,omitempty"`
}

// Entity is AuditEvent.entity.
type Entity struct {
	What  *Reference `json:"what,omitempty"`
	Type  *Coding    `json:"type,omitempty"`
	Role  *Coding    `json:"role,omitempty"`
	Query string     `json:"query,omitempty"`
}

var (
	codeRest        = Coding{System: systemEventType, Code: "rest", Display: "Restful Operation"}
	codeSourceRole  = Coding{System: systemDICOM, Code: "110153", Display: "Source Role ID"}
	codeDestRole    = Coding{System: systemDICOM, Code: "110152", Display: "Destination Role ID"}
	codeApplication = Coding{System: systemDICOM, Code: "110150", Display: "Application"}
	codeCustodian   = Coding{System: systemProvenance, Code: "custodian", Display: "Custodian"}
	codeRecipient   = Coding{System: systemParticipant, Code: "IRCP", Display: "information recipient"}
	codeAuthor      = Coding{System: systemParticipant, Code: "AUT", Display: "author (originator)"}
	codeAppServer   = Coding{System: systemSourceType, Code: "4", Display: "Application Server"}
	codePerson      = Coding{System: systemEntityType, Code: "1", Display: "Person"}
	codeSystemObj   = Coding{System: systemEntityType, Code: "2", Display: "System Object"}
	codePatientRole = Coding{System: systemObjectRole, Code: "1", Display: "Patient"}
	codeDomainRes   = Coding{System: systemObjectRole, Code: "4", Display: "Domain Resource"}
	codeQueryRole   = Coding{System: systemObjectRole, Code: "24", Display: "Query"}
	codeRequestID   = Coding{System: systemBALPEntity, Code: "XrequestId"}
)

// Action gives AuditEvent.action for an interaction that answered status:
// C create (an update or a conditional create that created answers 201), R
// read (read, vread, history of one resource, capabilities), U update and
// patch, D delete, E execute (searches, history of a type or the system,
// operations, batch and transaction).
func Action(i Interaction, status int) string {
	switch i {
	case Create:
		return "C"
	case Update, Patch:
		if status == http.StatusCreated {
			return "C"
		}
		return "U"
	case Delete:
		return "D"
	case Read, VRead, HistoryInstance, Capabilities:
		return "R"
	}
	return "E"
}

// Outcome gives AuditEvent.outcome for an HTTP status: 0 success (below
// 400), 4 minor failure (4xx: the request was refused), 12 major failure
// (503: the server could not serve at all, e.g. its database was down), 8
// serious failure (any other 5xx).
func Outcome(status int) string {
	switch {
	case status < 400:
		return "0"
	case status < 500:
		return "4"
	case status == http.StatusServiceUnavailable:
		return "12"
	}
	return "8"
}

// Event makes the AuditEvent of r as srv records it (no id or meta yet:
// NewWrite sets them). It is a pure function of its arguments.
//
// Following BALP, the client (the OAuth client id) and the server are
// agents whose roles depend on the direction of the data (read: the client
// is the Destination Role ID; create, update, search: the Source Role ID;
// delete: Application and Custodian); the user (the token's iss and sub) is
// the requestor; the tenant the user acts for is one more agent,
// identified in TenantSystem. The resource acted on is a System Object
// entity, a query (without values) a Query entity, and each patient in
// context a Patient entity.
func Event(r Record, srv Server) *AuditEvent {
	ev := &AuditEvent{
		ResourceType: "AuditEvent",
		Type:         codeRest,
		Subtype:      []Coding{{System: systemInteraction, Code: string(r.Interaction)}},
		Action:       Action(r.Interaction, r.Status),
		Recorded:     instant(r.Time),
		Outcome:      Outcome(r.Status),
	}
	if r.Status >= 400 {
		ev.OutcomeDesc = strconv.Itoa(r.Status) + " " + http.StatusText(r.Status)
	}
	ev.Agent = agents(r, srv)
	ev.Source = Source{Site: site(srv.BaseURL), Observer: serverRef(srv), Type: []Coding{codeAppServer}}
	ev.Entity = entities(r)
	return ev
}

// agents are the user (if authenticated), the client, the server and the
// tenant.
func agents(r Record, srv Server) []Agent {
	client, server := codeSourceRole, codeDestRole
	switch r.Interaction {
	case Read, VRead, HistoryInstance, Capabilities:
		client, server = codeDestRole, codeSourceRole
	case Delete:
		client, server = codeApplication, codeCustodian
	}
	p := r.Principal
	hasUser := p != nil && p.Subject != ""
	var out []Agent
	if hasUser {
		userType := codeRecipient
		switch r.Interaction {
		case Create, Update, Patch, Delete, Transaction, Batch:
			userType = codeAuthor
		}
		user := Agent{Type: concept(userType), Requestor: true,
			Who: &Reference{Identifier: &Identifier{System: p.Issuer, Value: p.Subject}}}
		for _, role := range p.Roles {
			user.Role = append(user.Role, CodeableConcept{Text: string(role)})
		}
		out = append(out, user)
	}
	// Without a known user, whoever called (the client) made the request.
	c := Agent{Type: concept(client), Requestor: !hasUser}
	if p != nil && p.ClientID != "" {
		c.Who = &Reference{Identifier: &Identifier{System: p.Issuer, Value: p.ClientID}}
	}
	if r.Remote != "" {
		c.Network = &Network{Address: r.Remote, Type: "2"}
	}
	out = append(out, c)
	s := serverRef(srv)
	out = append(out, Agent{Type: concept(server), Who: &s, Network: &Network{Address: srv.BaseURL, Type: "5"}})
	if p != nil && p.Tenant != "" {
		out = append(out, Agent{Type: tenantType(p.TenantKind),
			Who: &Reference{Identifier: &Identifier{System: TenantSystem, Value: p.Tenant}}})
	}
	return out
}

// tenantType is the kind of organization a tenant is.
func tenantType(k fhir.TenantKind) *CodeableConcept {
	switch k {
	case fhir.TenantHospital, fhir.TenantBank:
		return concept(Coding{System: systemOrgType, Code: "prov", Display: "Healthcare Provider"})
	case fhir.TenantAuthority:
		return concept(Coding{System: systemOrgType, Code: "govt", Display: "Government"})
	}
	return concept(Coding{System: systemOrgType, Code: "other", Display: "Other"})
}

// entities are the resource acted on, the query, the patients in context
// and the request id.
func entities(r Record) []Entity {
	var out []Entity
	if r.Interaction == Capabilities && r.Type == "" {
		r.Type = "CapabilityStatement"
	}
	if r.Type != "" && (r.ID != "" || !isQuery(r.Interaction)) {
		what := &Reference{Type: r.Type}
		if r.ID != "" {
			what = &Reference{Reference: r.Type + "/" + r.ID}
			if r.Version != "" {
				what.Reference += "/_history/" + r.Version
			}
		}
		out = append(out, Entity{What: what, Type: &codeSystemObj, Role: &codeDomainRes})
	}
	for _, ref := range r.Written {
		out = append(out, Entity{What: &Reference{Reference: ref}, Type: &codeSystemObj, Role: &codeDomainRes})
	}
	if q, ok := queryOf(r); ok {
		out = append(out, Entity{Type: &codeSystemObj, Role: &codeQueryRole,
			Query: base64.StdEncoding.EncodeToString([]byte(q))})
	}
	var patients []string
	if r.Principal != nil && r.Principal.Patient != "" {
		patients = append(patients, r.Principal.Patient)
	}
	if r.Type == "Patient" && r.ID != "" {
		patients = append(patients, r.ID)
	}
	patients = append(patients, r.Patients...)
	seen := map[string]bool{}
	for _, id := range patients {
		if id == "" || seen[id] || !idPattern.MatchString(id) {
			continue
		}
		seen[id] = true
		out = append(out, Entity{What: &Reference{Reference: "Patient/" + id}, Type: &codePerson, Role: &codePatientRole})
	}
	if requestIDPattern.MatchString(r.RequestID) {
		out = append(out, Entity{What: &Reference{Identifier: &Identifier{Value: r.RequestID}}, Type: &codeRequestID})
	}
	return out
}

// isQuery reports whether an interaction selects resources by a query
// rather than by id.
func isQuery(i Interaction) bool {
	switch i {
	case SearchType, SearchSystem, HistoryType, HistorySystem:
		return true
	}
	return false
}

// queryOf is the query a record's Query entity holds: the path relative to
// the base and the parameter names, each with its value removed
// ("Observation?code=&_include="). ok is false when there is none to record.
func queryOf(r Record) (string, bool) {
	var path string
	switch r.Interaction {
	case SearchType:
		path = r.Type
	case SearchSystem:
	case HistoryType:
		path = r.Type + "/_history"
	case HistorySystem:
		path = "_history"
	case Operation:
		path = strings.Trim(r.Type+"/"+r.ID, "/")
		if path != "" {
			path += "/"
		}
		path += r.Operation
	default:
		if r.Query == "" {
			return "", false
		}
		path = r.Type
		if r.ID != "" {
			path += "/" + r.ID
		}
		if r.Interaction == HistoryInstance {
			path += "/_history"
		}
	}
	names := ParamNames(r.Query)
	if len(names) == 0 {
		return path, true
	}
	return path + "?" + strings.Join(names, "=&") + "=", true
}

// paramName is what a search parameter name (with modifiers, chains and
// _has) can look like; a key of another form is recorded as "?" so that no
// text a client sends reaches the audit trail.
var paramName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_\-.:$]{0,127}$`)

// ParamNames returns the parameter names of a query string in the order
// sent, one per occurrence, each URL-decoded; a name that is not of the
// form of a search parameter is "?". Values are never returned.
func ParamNames(query string) []string {
	var out []string
	for part := range strings.SplitSeq(query, "&") {
		if part == "" {
			continue
		}
		key, _, _ := strings.Cut(part, "=")
		name, err := url.QueryUnescape(key)
		if err != nil || !paramName.MatchString(name) {
			name = "?"
		}
		out = append(out, name)
	}
	return slices.Clip(out)
}

var (
	idPattern        = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
	requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9\-_.:]{1,128}$`)
)

// serverRef names the server as srv's base URL.
func serverRef(srv Server) Reference {
	return Reference{Identifier: &Identifier{System: systemURI, Value: srv.BaseURL}, Display: "CMTS FHIR server"}
}

// site is the host of the base URL.
func site(base string) string {
	if u, err := url.Parse(base); err == nil && u.Host != "" {
		return u.Host
	}
	return base
}

func concept(c Coding) *CodeableConcept { return &CodeableConcept{Coding: []Coding{c}} }

// instant writes t as an R4 instant: UTC, microseconds at most.
func instant(t time.Time) string {
	return t.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)
}
