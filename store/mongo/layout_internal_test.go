package mongo

import (
	"testing"

	"github.com/fmtbank/cmts/store"
	"github.com/google/go-cmp/cmp"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestPackedEntries: the packed fIdx gives back every field of every entry
// (empty strings, "|" and "\", Chinese, a negative group), and a document
// written before it, with an array of entryDoc, reads back the same.
func TestPackedEntries(t *testing.T) {
	entries := []store.IndexEntry{
		{Param: "identifier", Kind: store.KindToken, System: "urn:a|b", Code: `c\d`, Value: "文本"},
		{Param: "birthdate", Kind: store.KindDate, Low: "1990-05-01T00:00:00.000000Z", High: "1990-05-01T23:59:59.999999Z"},
		{Param: "code-value-quantity$code", Kind: store.KindToken, Code: "x", Group: 3},
		{Param: "subject", Kind: store.KindReference, System: "Patient", Code: "p1", Group: -1},
		{Param: "", Kind: ""},
	}
	got, err := unpackEntries(packEntries(entries))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(entries, got); diff != "" {
		t.Errorf("packed and unpacked (-want +got):\n%s", diff)
	}
	if got, err := unpackEntries(packEntries(nil)); err != nil || len(got) != 0 {
		t.Errorf("no entries: %v, %v", got, err)
	}
	packed := packEntries(entries)
	for _, bad := range [][]byte{nil, {0}, packed[:len(packed)-1], append([]byte{packedEntries}, 0xff)} {
		if _, err := unpackEntries(bad); err == nil {
			t.Errorf("unpack(%x) succeeded", bad)
		}
	}

	var legacy []entryDoc
	for _, e := range entries {
		legacy = append(legacy, entryDoc{Param: e.Param, Kind: string(e.Kind), System: e.System, Code: e.Code,
			Value: e.Value, Low: e.Low, High: e.High, Group: e.Group})
	}
	for name, idx := range map[string]any{"packed": indexFields(entries)[0].Value, "array": legacy} {
		raw, err := bson.Marshal(bson.D{{Key: "_id", Value: "Patient/p/1"}, {Key: fIdx, Value: idx}})
		if err != nil {
			t.Fatal(err)
		}
		var d versionDoc
		if err := bson.Unmarshal(raw, &d); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(entries, []store.IndexEntry(d.Idx)); diff != "" {
			t.Errorf("%s: read back (-want +got):\n%s", name, diff)
		}
	}
}

// TestIndexArrays: each entry's param|Code is in exactly one of code, tokc
// and refi (an exact string search looks in all three), and every other
// array holds what it held before.
func TestIndexArrays(t *testing.T) {
	entries := []store.IndexEntry{
		{Param: "identifier", Kind: store.KindToken, System: "s", Code: "c", Value: "t"},
		{Param: "subject", Kind: store.KindReference, System: "Patient", Code: "p1"},
		{Param: "subject", Kind: store.KindReference, Value: "http://x/Patient/p2"},
		{Param: "name", Kind: store.KindString, Code: "Zhang", Value: "zhang"},
		{Param: "birthdate", Kind: store.KindDate, Low: "l", High: "h"},
	}
	got := map[string]any{}
	for _, e := range indexFields(entries)[1:] {
		got[e.Key] = e.Value
	}
	want := map[string]any{
		fTok:     []string{"identifier|s|c"},
		fTokCode: []string{"identifier|c"},
		fRef:     []string{"subject|Patient|p1", "subject||"},
		fRefID:   []string{"subject|p1", "subject|"},
		fRefURL:  []string{"subject|http://x/Patient/p2"},
		fValue:   []string{"identifier|t", "subject|", "subject|http://x/Patient/p2", "name|zhang", "birthdate|"},
		fCode:    []string{"name|Zhang", "birthdate|"},
		fLow:     []string{"birthdate|l"},
		fHigh:    []string{"birthdate|h"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("index arrays (-want +got):\n%s", diff)
	}
}
