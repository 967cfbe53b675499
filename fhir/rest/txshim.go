package rest

import (
	"context"
	"errors"

	"github.com/fmtbank/cmts/store"
)

// txShim gives a store without Transact the one-write form of it (through
// PutIf and Put), until every backend has Transact. TEMPORARY.
type txShim struct{ store.Store }

func (t txShim) Transact(ctx context.Context, conds []store.Query, decide func([][]*store.Version) ([]store.Write, error)) error {
	if len(conds) > 1 {
		return errors.New("txShim: more than one condition")
	}
	one := func(ws []store.Write) (*store.Write, error) {
		switch len(ws) {
		case 0:
			return nil, nil
		case 1:
			return &ws[0], nil
		}
		return nil, errors.New("txShim: more than one write")
	}
	if len(conds) == 0 {
		ws, err := decide(nil)
		if err != nil {
			return err
		}
		w, err := one(ws)
		if err != nil || w == nil {
			return err
		}
		return t.Put(ctx, *w)
	}
	return t.PutIf(ctx, conds[0], func(m []*store.Version) (*store.Write, error) {
		ws, err := decide([][]*store.Version{m})
		if err != nil {
			return nil, err
		}
		return one(ws)
	})
}
