package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/fmtbank/cmts/fhir/bundle"
	"github.com/fmtbank/cmts/store"
)

// Indexer computes the search index entries of a resource; search.Engine
// implements it. The entries make AuditEvent?entity=, ?agent:identifier=,
// ?date=, ?patient= and the other R4 AuditEvent parameters work.
type Indexer interface {
	Entries(resourceType string, body []byte) ([]store.IndexEntry, error)
}

// Maker turns records into store writes of their AuditEvents.
type Maker struct {
	// Server is the recording server (BaseURL required).
	Server Server
	// Indexer indexes the events (required).
	Indexer Indexer
	// NoTenant is the tenant under which events of unauthenticated requests
	// are stored (a request refused with 401 has no tenant); "" by default.
	NoTenant string
	// OrderedIDs gives the events ids that grow with time
	// (bundle.NewOrderedID), for a store that writes those cheaper
	// (bundle.WantsOrderedIDs): every write stores an event, and a random
	// id put each on pages of its own in the store's id-keyed B-trees.
	OrderedIDs bool
}

// check reports a Maker that cannot work.
func (m *Maker) check() error {
	switch {
	case m.Server.BaseURL == "":
		return errors.New("audit: no server base URL")
	case m.Indexer == nil:
		return errors.New("audit: no indexer")
	}
	return nil
}

// Write makes the store write that creates r's AuditEvent as a new
// resource: a new id, version 1 made by POST at now (meta.versionId and
// meta.lastUpdated set), under the tenant of r's principal, with its index
// entries. A record without a Time is recorded at now.
func (m *Maker) Write(r Record, now time.Time) (store.Write, error) {
	if r.Time.IsZero() {
		r.Time = now
	}
	var id string
	if m.OrderedIDs {
		id = bundle.NewOrderedID(now)
	} else {
		id = bundle.NewID()
	}
	return NewWrite(Event(r, m.Server), id, m.tenant(r), now, m.Indexer)
}

func (m *Maker) tenant(r Record) string {
	if r.Principal != nil && r.Principal.Tenant != "" {
		return r.Principal.Tenant
	}
	return m.NoTenant
}

// NewWrite makes the store write that creates ev as a new AuditEvent of
// tenant at now: id (new), VersionID 1, Method POST, meta set, index
// entries computed by ix. ev is changed (id and meta).
func NewWrite(ev *AuditEvent, id, tenant string, now time.Time, ix Indexer) (store.Write, error) {
	now = now.UTC().Truncate(time.Microsecond)
	ev.ID = id
	ev.Meta = &Meta{VersionID: "1", LastUpdated: instant(now)}
	body, err := json.Marshal(ev)
	if err != nil {
		return store.Write{}, fmt.Errorf("audit: %w", err)
	}
	index, err := ix.Entries("AuditEvent", body)
	if err != nil {
		return store.Write{}, fmt.Errorf("audit: index: %w", err)
	}
	return store.Write{Version: store.Version{Tenant: tenant, Type: "AuditEvent", ID: ev.ID, VersionID: 1,
		LastUpdated: now, Resource: body, Index: index, Method: http.MethodPost,
		// The trail never leaves its tenant, not even through a role that
		// reads every tenant.
		Reach: store.ReachOwner}}, nil
}
