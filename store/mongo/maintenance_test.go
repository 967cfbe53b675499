package mongo_test

import (
	"testing"

	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/mongo/mongotest"
	"github.com/fmtbank/cmts/store/storetest"
)

func TestMaintenance(t *testing.T) {
	t.Parallel()
	srv := mongotest.Start(t)
	storetest.RunMaintenance(t, func(t *testing.T) store.Store { return open(t, srv) })
}
