package mongo_test

import (
	"flag"
	"os"
	"testing"
)

// parallel is how many of the package's parallel tests run at once unless
// -test.parallel says otherwise. Go's default is GOMAXPROCS (2 on the
// test machine), but these tests spend most of their time waiting for
// FerretDB's answers, and FerretDB is a process of its own per test: two at
// a time left the CPUs idle while the store suite's 190 small subtests and
// the export jobs' one-second polls went by two by two at the end of the
// run. The costly search table runs from goroutines of its own anyway (see
// TestSearchCases).
const parallel = "8"

func TestMain(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		if err := flag.Set("test.parallel", parallel); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}
