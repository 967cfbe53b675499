package resttest

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"

	"github.com/fmtbank/cmts/store"
)

// packed is a store that keeps every resource body gzip-compressed in the
// store underneath and gives it back whole: the server above it and the
// store below see the same versions, index entries included, as without it,
// but for the bytes of the bodies.
//
// It is for the search table on FerretDB v1, which decodes every document
// of the collection, bodies included, for each query: the 655
// StructureDefinitions are 40 MB of JSON but 6 MB compressed. The bodies
// are opaque to a store (it searches the index entries), and that a store
// keeps them byte for byte is the conformance suite's and the round trip's
// to prove.
type packed struct {
	store.Store
}

func pack(body []byte) []byte {
	if body == nil {
		return nil
	}
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestSpeed)
	w.Write(body)
	w.Close()
	return b.Bytes()
}

// unpack restores the body of v in place.
func unpack(v *store.Version) error {
	if v == nil || v.Resource == nil {
		return nil
	}
	r, err := gzip.NewReader(bytes.NewReader(v.Resource))
	if err != nil {
		return fmt.Errorf("resttest: body of %s/%s/%d is not packed: %v", v.Type, v.ID, v.VersionID, err)
	}
	body, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("resttest: unpacking %s/%s/%d: %v", v.Type, v.ID, v.VersionID, err)
	}
	v.Resource = body
	return nil
}

func unpackAll(vs []*store.Version) error {
	for _, v := range vs {
		if err := unpack(v); err != nil {
			return err
		}
	}
	return nil
}

func packWrite(w store.Write) store.Write {
	w.Version.Resource = pack(w.Version.Resource)
	return w
}

func (p packed) Read(ctx context.Context, a store.Access, typ, id string) (*store.Version, error) {
	v, err := p.Store.Read(ctx, a, typ, id)
	if err == nil {
		err = unpack(v)
	}
	return v, err
}

func (p packed) ReadVersion(ctx context.Context, a store.Access, typ, id string, vid int64) (*store.Version, error) {
	v, err := p.Store.ReadVersion(ctx, a, typ, id, vid)
	if err == nil {
		err = unpack(v)
	}
	return v, err
}

func (p packed) Put(ctx context.Context, w store.Write) error {
	return p.Store.Put(ctx, packWrite(w))
}

func (p packed) PutIf(ctx context.Context, q store.Query, decide func([]*store.Version) (*store.Write, error)) error {
	return p.Store.PutIf(ctx, q, func(matches []*store.Version) (*store.Write, error) {
		if err := unpackAll(matches); err != nil {
			return nil, err
		}
		w, err := decide(matches)
		if w != nil {
			pw := packWrite(*w)
			w = &pw
		}
		return w, err
	})
}

func (p packed) Transact(ctx context.Context, conds []store.Query, decide func([][]*store.Version) ([]store.Write, error)) error {
	return p.Store.Transact(ctx, conds, func(matches [][]*store.Version) ([]store.Write, error) {
		for _, m := range matches {
			if err := unpackAll(m); err != nil {
				return nil, err
			}
		}
		ws, err := decide(matches)
		out := make([]store.Write, len(ws))
		for i, w := range ws {
			out[i] = packWrite(w)
		}
		return out, err
	})
}

func (p packed) History(ctx context.Context, q store.HistoryQuery) (*store.HistoryPage, error) {
	h, err := p.Store.History(ctx, q)
	if err == nil {
		err = unpackAll(h.Versions)
	}
	return h, err
}

func (p packed) Search(ctx context.Context, q store.Query) (*store.SearchPage, error) {
	page, err := p.Store.Search(ctx, q)
	if err == nil {
		err = unpackAll(page.Versions)
	}
	return page, err
}

func (p packed) Scan(ctx context.Context, after *store.SearchCursor, limit int) ([]*store.Version, error) {
	vs, err := p.Store.Scan(ctx, after, limit)
	if err == nil {
		err = unpackAll(vs)
	}
	return vs, err
}
