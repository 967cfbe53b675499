package bundle

import (
	"context"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/store"
)

// Auditor records the writes of a Writer (auth/audit implements it).
type Auditor interface {
	// AuditWrites returns the writes that record entries, whose results
	// are results (same order), carried out for p at now (the
	// transaction's timestamp). The Writer calls it inside the store
	// transaction, once the data's writes are decided, and commits its
	// writes with them: the data is stored with its audit records or
	// neither is. It must not touch the store; an error aborts the
	// transaction.
	AuditWrites(ctx context.Context, p *fhir.Principal, now time.Time, entries []*Entry, results []*Result) ([]store.Write, error)
	// AuditFailure records that entries failed with err and stored
	// nothing. The Writer calls it for a failed batch entry (the batch
	// itself succeeds, so nothing above the Writer sees that failure);
	// the failure of Write itself is its caller's to record. It must not
	// block for long.
	AuditFailure(ctx context.Context, p *fhir.Principal, entries []*Entry, err error)
}
