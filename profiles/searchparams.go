package profiles

// SearchParameters returns the guide's SearchParameter resources as JSON,
// for the search registry (search.New) to index beside the R4 ones.
func SearchParameters() ([][]byte, error) {
	rs, err := Guide()
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, r := range rs {
		if r.Type == "SearchParameter" {
			out = append(out, r.JSON)
		}
	}
	return out, nil
}
