package sqlite_test

import (
	"testing"

	"github.com/fmtbank/cmts/fhir/rest/resttest"
)

// TestSearchCases runs the hand-worked search table over all the official examples.
func TestSearchCases(t *testing.T) { resttest.RunSearchCases(t, openStore) }
