package sqlite_test

import (
	"testing"

	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/storetest"
)

func TestMaintenance(t *testing.T) {
	storetest.RunMaintenance(t, func(t *testing.T) store.Store { return openStore(t) })
}
