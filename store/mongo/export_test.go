package mongo

// CrashSteps are the steps of Transact a test may stop it after.
var CrashSteps = []string{"checked", "marked", "first", "inserted", "decided", "superseded", "unmarked", "cleared"}

// CrashAfter makes every later Transact stop after step, as a writer that
// died there would ("" never).
func (s *Store) CrashAfter(step string) { s.txnCrash = step }

// ClearOnCommit sets whether a transaction's roll-forward clears its
// marks at once (the default except on FerretDB v1) or leaves them until
// a writer builds on a marked version.
func (s *Store) ClearOnCommit(on bool) { s.clearOnCommit = on }

// SetTxnBatch sets how many writes of a transaction go in one batch (0:
// txnBatch).
func (s *Store) SetTxnBatch(n int) { s.batchSize = n }
