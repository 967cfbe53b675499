package mongo

// CrashSteps are the steps of Transact a test may stop it after.
var CrashSteps = []string{"checked", "marked", "first", "inserted", "decided", "superseded", "unmarked", "cleared"}

// CrashAfter makes every later Transact stop after step, as a writer that
// died there would ("" never).
func (s *Store) CrashAfter(step string) { s.txnCrash = step }
