package main

import (
	"github.com/fmtbank/cmts/fhir/search"
	"github.com/fmtbank/cmts/profiles"
	"github.com/fmtbank/cmts/store"
)

// guideEngine is the search engine with the WMT guide's search parameters
// beside the R4 ones; serve and reindex share it, so a changed parameter set
// is what reindex writes.
func guideEngine() (*search.Engine, error) {
	sps, err := profiles.SearchParameters()
	if err != nil {
		return nil, err
	}
	return search.New(sps...)
}

// withGuide is the search engine and the guide's validator and conformance
// service over st.
func withGuide(st store.Store, requireProfiles bool) (*search.Engine, *profiles.Service, error) {
	engine, err := guideEngine()
	if err != nil {
		return nil, nil, err
	}
	defs, err := profiles.Embedded()
	if err != nil {
		return nil, nil, err
	}
	svc, err := profiles.NewService(defs, st, requireProfiles)
	if err != nil {
		return nil, nil, err
	}
	return engine, svc, nil
}
