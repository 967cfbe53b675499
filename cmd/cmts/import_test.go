package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/bundle"
	"github.com/fmtbank/cmts/fhir/fhirtest"
	"github.com/fmtbank/cmts/fhir/rest/resttest"
	"github.com/fmtbank/cmts/store"
	"github.com/fmtbank/cmts/store/sqlite"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// importRun runs `cmts import` in this process and returns its exit code,
// stdout and stderr.
func importRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"import"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// storedVersions is Type/id -> current versionId of every resource in the
// embedded store under dir.
func storedVersions(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got := map[string]int64{}
	var after *store.SearchCursor
	for {
		vs, err := st.Scan(ctx, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) == 0 {
			return got
		}
		for _, v := range vs {
			got[v.Type+"/"+v.ID] = v.VersionID
		}
		after = &store.SearchCursor{Type: vs[len(vs)-1].Type, ID: vs[len(vs)-1].ID}
	}
}

// readResource is the stored resource Type/id under dir, decoded.
func readResource(t *testing.T, dir, typ, id string) map[string]any {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	v, err := st.Read(ctx, store.Tenant("default"), typ, id)
	if err != nil {
		t.Fatalf("%s/%s: %v", typ, id, err)
	}
	var m map[string]any
	if err := json.Unmarshal(v.Resource, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func writeFile(t *testing.T, path string, body []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func versionsOne(keys ...string) map[string]int64 {
	m := map[string]int64{}
	for _, k := range keys {
		m[k] = 1
	}
	return m
}

const (
	patientA = `{"resourceType":"Patient","id":"a","gender":"female"}`
	patientB = `{"resourceType":"Patient","id":"b","birthDate":"1970-01-02"}`
	obsOfA   = `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"Bristol stool scale"},"subject":{"reference":"Patient/a"}}`
)

// TestImportFormats imports each input form into a new store and checks
// what it holds.
func TestImportFormats(t *testing.T) {
	t.Parallel()
	collection := `{"resourceType":"Bundle","type":"collection","entry":[
	 {"fullUrl":"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a","resource":{"resourceType":"Patient","gender":"male"}},
	 {"fullUrl":"urn:uuid:88f151c0-a954-468a-88bd-5ae15c08e059","resource":{"resourceType":"Observation","status":"final","code":{"text":"weight"},
	   "subject":{"reference":"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"}}},
	 {"resource":` + patientB + `}]}`
	transaction := `{"resourceType":"Bundle","type":"transaction","entry":[
	 {"resource":` + patientA + `,"request":{"method":"PUT","url":"Patient/a"}},
	 {"request":{"method":"DELETE","url":"Patient/zz"}}]}`
	for _, tc := range []struct {
		name  string
		files map[string][]byte
		args  []string // paths relative to the temporary directory
		want  func(in string) map[string]int64
		// summary is what stdout must contain.
		summary string
	}{
		{name: "ndjson", files: map[string][]byte{"p.ndjson": []byte(patientA + "\n\n" + patientB + "\r\n" + obsOfA)}, args: []string{"p.ndjson"},
			want:    func(string) map[string]int64 { return versionsOne("Patient/a", "Patient/b", "Observation/o1") },
			summary: "imported 1 files: 3 resources written, 0 unchanged, 0 failed"},
		{name: "gzip", files: map[string][]byte{"p.ndjson.gz": gzipped(t, []byte(patientA+"\n"+patientB+"\n"))}, args: []string{"p.ndjson.gz"},
			want:    func(string) map[string]int64 { return versionsOne("Patient/a", "Patient/b") },
			summary: "imported 1 files: 2 resources written, 0 unchanged, 0 failed"},
		{name: "resource json", files: map[string][]byte{"a.json": []byte(patientA)}, args: []string{"a.json"},
			want:    func(string) map[string]int64 { return versionsOne("Patient/a") },
			summary: "1 resources written, 0 unchanged, 0 failed"},
		{name: "collection bundle", files: map[string][]byte{"c.json": []byte(collection)}, args: []string{"c.json"},
			want: func(in string) map[string]int64 {
				c := filepath.Join(in, "c.json")
				return versionsOne("Patient/"+stableID(c, "entry 0"), "Observation/"+stableID(c, "entry 1"), "Patient/b")
			},
			summary: "3 resources written, 0 unchanged, 0 failed"},
		{name: "transaction bundle", files: map[string][]byte{"t.json": []byte(transaction)}, args: []string{"t.json"},
			want:    func(string) map[string]int64 { return versionsOne("Patient/a") },
			summary: "1 resources written, 0 unchanged, 0 failed in"},
		{name: "directory", files: map[string][]byte{"d/x/1.ndjson": []byte(patientA + "\n"), "d/2.ndjson.gz": gzipped(t, []byte(patientB)),
			"d/y/o.json": []byte(obsOfA), "d/readme.txt": []byte("not imported"), "d/.hidden.json": []byte("{")}, args: []string{"d"},
			want:    func(string) map[string]int64 { return versionsOne("Patient/a", "Patient/b", "Observation/o1") },
			summary: "imported 3 files: 3 resources written, 0 unchanged, 0 failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in, data := t.TempDir(), t.TempDir()
			for name, body := range tc.files {
				writeFile(t, filepath.Join(in, name), body)
			}
			args := []string{"--data", data, "--batch", "1"}
			for _, a := range tc.args {
				args = append(args, filepath.Join(in, a))
			}
			code, out, errOut := importRun(t, args...)
			if code != 0 {
				t.Fatalf("exit %d\n%s%s", code, out, errOut)
			}
			if !strings.Contains(out, tc.summary) {
				t.Errorf("summary %q, want it to contain %q", out, tc.summary)
			}
			if diff := cmp.Diff(tc.want(in), storedVersions(t, data)); diff != "" {
				t.Errorf("stored (-want +got):\n%s", diff)
			}
			if tc.name == "collection bundle" {
				c := filepath.Join(in, "c.json")
				obs := readResource(t, data, "Observation", stableID(c, "entry 1"))
				ref := obs["subject"].(map[string]any)["reference"]
				if want := "Patient/" + stableID(c, "entry 0"); ref != want {
					t.Errorf("the urn:uuid reference became %v, want %s", ref, want)
				}
			}
		})
	}
}

// TestImportBadLines: each bad resource is reported as file:line: reason;
// stop commits what came before the first and stops, skip goes on.
func TestImportBadLines(t *testing.T) {
	t.Parallel()
	lines := []string{
		patientA,
		`{"resourceType":"Patient","id":"bad1","gender":"nonsense"}`,
		`not json`,
		patientB,
		`{"gender":"male"}`,
		`{"resourceType":"Patient","id":"no good id!"}`,
		obsOfA,
	}
	for _, tc := range []struct {
		name     string
		onError  string
		wantErr  []string
		want     map[string]int64
		summary  string
		wantCode int
	}{
		{name: "stop", onError: "stop",
			wantErr: []string{`F:2: The resource is not valid FHIR R4: code type mismatch: "nonsense" is not a AdministrativeGenderCode (Patient.gender)`},
			want:    versionsOne("Patient/a"),
			summary: "imported 1 files: 1 resources written, 0 unchanged, 1 failed", wantCode: 1},
		{name: "skip", onError: "skip",
			wantErr: []string{
				`F:2: The resource is not valid FHIR R4: code type mismatch: "nonsense" is not a AdministrativeGenderCode (Patient.gender)`,
				`F:3: Not a JSON object: invalid character 'o' in literal null (expecting 'u')`,
				`F:5: The resource has no resourceType`,
				`F:6: An element has a value of the wrong type or form: error at "Patient.id": invalid Id format (Patient.id)`,
			},
			want:    versionsOne("Patient/a", "Patient/b", "Observation/o1"),
			summary: "imported 1 files: 3 resources written, 0 unchanged, 4 failed", wantCode: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in, data := t.TempDir(), t.TempDir()
			f := filepath.Join(in, "bad.ndjson")
			writeFile(t, f, []byte(strings.Join(lines, "\n")+"\n"))
			code, out, errOut := importRun(t, "--data", data, "--batch", "1", "--on-error", tc.onError, f)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d", code, tc.wantCode)
			}
			var want []string
			for _, l := range tc.wantErr {
				want = append(want, strings.Replace(l, "F", f, 1))
			}
			if diff := cmp.Diff(want, strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
			if !strings.Contains(out, tc.summary) {
				t.Errorf("summary %q, want it to contain %q", out, tc.summary)
			}
			if diff := cmp.Diff(tc.want, storedVersions(t, data)); diff != "" {
				t.Errorf("stored (-want +got):\n%s", diff)
			}
		})
	}
}

// TestImportBundleEntryErrors: a bad Bundle entry is reported as
// file: entry N: reason.
func TestImportBundleEntryErrors(t *testing.T) {
	t.Parallel()
	in, data := t.TempDir(), t.TempDir()
	f := filepath.Join(in, "c.json")
	writeFile(t, f, []byte(`{"resourceType":"Bundle","type":"collection","entry":[{"resource":`+patientA+`},
	  {"resource":{"resourceType":"Patient","id":"x","birthDate":"yesterday"}},{"resource":`+patientB+`}]}`))
	code, out, errOut := importRun(t, "--data", data, "--batch", "1", "--on-error", "skip", f)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.HasPrefix(errOut, f+": entry 1: ") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("stderr %q, want one line %q", errOut, f+": entry 1: reason")
	}
	if !strings.Contains(out, "2 resources written, 0 unchanged, 1 failed") {
		t.Errorf("summary %q", out)
	}
}

// genNDJSON is n Patients of about 1 KB, without ids when noIDs (their
// ids then come from file and line).
func genNDJSON(n int, noIDs bool) []byte {
	var b bytes.Buffer
	writeNDJSON(&b, n, noIDs)
	return b.Bytes()
}

// writeNDJSON writes genNDJSON's lines to w.
func writeNDJSON(w io.Writer, n int, noIDs bool) {
	b := bufio.NewWriter(w)
	defer b.Flush()
	for i := range n {
		id := fmt.Sprintf(`"id":"p%d",`, i)
		if noIDs {
			id = ""
		}
		fmt.Fprintf(b, `{"resourceType":"Patient",%s"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Registry recipient %d, enrolled for faecal microbiota transplantation</div>"},"identifier":[{"system":"urn:oid:1.2.156.112604.1.2","value":"WMT-%08d"}],`+
			`"active":true,"name":[{"family":"Donor%d","given":["Recipient","Anonymous"],"text":"Donor %d"}],"gender":"female","birthDate":"1980-03-%02d",`+
			`"telecom":[{"system":"phone","value":"+86-10-5555-%04d","use":"mobile"}],`+
			`"address":[{"use":"home","line":["No. %d Zhongguancun Street","Building 7, Unit 3"],"city":"Beijing","district":"Haidian","postalCode":"100080","country":"CN"}],`+
			`"contact":[{"relationship":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0131","code":"N"}]}],"name":{"family":"Contact%d","given":["Next","Of","Kin"]},`+
			`"telecom":[{"system":"phone","value":"+86-10-6666-%04d"}]}],"communication":[{"language":{"coding":[{"system":"urn:ietf:bcp:47","code":"zh-CN"}]},"preferred":true}]}`+"\n",
			id, i, i, i, i, i%28+1, i%10000, i, i, i%10000)
	}
}

// TestImportRerunWritesNothing: a second run of the same files stores no
// new version, ids from the file or derived from file and line alike.
func TestImportRerunWritesNothing(t *testing.T) {
	t.Parallel()
	in, data := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(in, "with-ids.ndjson"), genNDJSON(20, false))
	writeFile(t, filepath.Join(in, "without-ids.ndjson.gz"), gzipped(t, genNDJSON(20, true)))
	for i, want := range []string{"40 resources written, 0 unchanged, 0 failed", "0 resources written, 40 unchanged, 0 failed"} {
		code, out, errOut := importRun(t, "--data", data, "--batch", "1", in)
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("run %d: exit %d, stdout %q, want %q\n%s", i+1, code, out, want, errOut)
		}
	}
	got := storedVersions(t, data)
	if len(got) != 40 {
		t.Errorf("%d resources stored, want 40", len(got))
	}
	for k, v := range got {
		if v != 1 {
			t.Errorf("%s has %d versions, want 1", k, v)
		}
	}
}

// TestImportKill9ThenRerun kills an import (the test binary as cmts) at a
// random moment; a rerun completes it, and every resource is there once.
func TestImportKill9ThenRerun(t *testing.T) {
	t.Parallel()
	const n = 4000
	in, data := t.TempDir(), t.TempDir()
	f := filepath.Join(in, "big.ndjson")
	writeFile(t, f, genNDJSON(n, true))
	// Kill at a random moment; a kill before the first commit (a slow
	// start on a busy machine) or after the last does not count.
	wait, midway := 300*time.Millisecond, 0
	for attempt := 0; midway < 2 && attempt < 8; attempt++ {
		cmd := exec.Command(os.Args[0], "import", "--data", data, "--batch", "1", f)
		cmd.Env = append(os.Environ(), "CMTS_TEST_BE_CMTS=1")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(wait + time.Duration(rand.Int64N(int64(wait))))
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		switch stored := len(storedVersions(t, data)); {
		case stored == n:
			t.Fatalf("the import finished before the kill; make the input larger")
		case stored == 0:
			wait *= 2
		default:
			midway++
		}
	}
	if midway == 0 {
		t.Fatal("no kill landed in the middle of the import")
	}
	// The killed runs commit one resource at a time, so that the kills
	// land between many commits; the rerun takes import's default batch,
	// as someone finishing the job would.
	code, out, errOut := importRun(t, "--data", data, f)
	if code != 0 {
		t.Fatalf("rerun: exit %d\n%s%s", code, out, errOut)
	}
	m := regexp.MustCompile(`(\d+) resources written, (\d+) unchanged, 0 failed`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("summary %q", out)
	}
	written, _ := strconv.Atoi(m[1])
	unchanged, _ := strconv.Atoi(m[2])
	if written+unchanged != n || unchanged == 0 || written == 0 {
		t.Errorf("rerun wrote %d and found %d unchanged; want a sum of %d, some of each", written, unchanged, n)
	}
	got := storedVersions(t, data)
	if len(got) != n {
		t.Errorf("%d resources stored, want %d", len(got), n)
	}
	for i := range n {
		if v := got["Patient/"+stableID(f, "line "+strconv.Itoa(i+1))]; v != 1 {
			t.Fatalf("line %d: %d versions, want 1", i+1, v)
		}
	}
}

// TestImportBatchCommitsGoodOnes: in a batch with a bad resource the good
// ones are still committed.
func TestImportBatchCommitsGoodOnes(t *testing.T) {
	t.Parallel()
	in, data := t.TempDir(), t.TempDir()
	f := filepath.Join(in, "b.ndjson")
	writeFile(t, f, []byte(strings.Join([]string{patientA, `{"resourceType":"Patient","id":"bad","gender":"x"}`, patientB, obsOfA}, "\n")))
	for _, tc := range []struct {
		onError string
		want    map[string]int64
	}{
		{"skip", versionsOne("Patient/a", "Patient/b", "Observation/o1")},
		{"stop", versionsOne("Patient/a")},
	} {
		t.Run(tc.onError, func(t *testing.T) {
			data := filepath.Join(data, tc.onError)
			code, out, errOut := importRun(t, "--data", data, "--batch", "10", "--on-error", tc.onError, f)
			if code != 1 || !strings.HasPrefix(errOut, f+":2: ") || strings.Count(errOut, "\n") != 1 {
				t.Fatalf("exit %d, stderr %q, stdout %q", code, errOut, out)
			}
			if diff := cmp.Diff(tc.want, storedVersions(t, data)); diff != "" {
				t.Errorf("stored (-want +got):\n%s", diff)
			}
		})
	}
}

// TestImportOfficialExamples imports the FHIR R4 examples as a directory
// with --on-error skip: the failures are exactly the resources the codec
// refuses, counted here apart.
func TestImportOfficialExamples(t *testing.T) {
	t.Parallel()
	dir := fhirtest.ExamplesDir(t)
	codec, err := fhir.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	files, _, err := importFiles([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	// The codec's count is taken while the import runs: on the cores the
	// import leaves idle (it writes on one).
	type count struct {
		n   int
		err error
	}
	counted := make(chan count, 1)
	go func() {
		n, err := codecRejections(codec, files)
		counted <- count{n, err}
	}()
	data := t.TempDir()
	code, out, errOut := importRun(t, "--data", data, "--batch", "500", "--on-error", "skip", dir)
	c := <-counted
	if c.err != nil {
		t.Fatal(c.err)
	}
	rejected := c.n
	t.Log(out)
	// Some examples hold the same resource as another (a Bundle entry and
	// its own file): the second is unchanged.
	m := regexp.MustCompile(`imported (\d+) files: (\d+) resources written, \d+ unchanged, (\d+) failed`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("exit %d, summary %q\n%s", code, out, errOut)
	}
	if got, _ := strconv.Atoi(m[1]); got != len(files) {
		t.Errorf("%d files imported, want %d", got, len(files))
	}
	if failed, _ := strconv.Atoi(m[3]); failed != rejected {
		t.Errorf("%d failed, want the codec's %d rejections; stderr:\n%s", failed, rejected, errOut)
	} else {
		t.Logf("%d resources refused, as many as the codec and CheckID refuse", failed)
	}
	if rejected > 0 && code != 1 {
		t.Errorf("exit %d with failures, want 1", code)
	}
	if written, _ := strconv.Atoi(m[2]); written < 5000 {
		t.Errorf("only %d resources written", written)
	}
}

// codecRejections counts the resources of the files (a Bundle import takes
// apart counts as its entries) that the codec refuses, or whose id the
// Writer refuses.
func codecRejections(codec *fhir.Codec, files []string) (int, error) {
	rejected := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return 0, err
		}
		var bun struct {
			ResourceType, Type string
			Entry              []struct{ Resource json.RawMessage }
		}
		bodies := [][]byte{b}
		if json.Unmarshal(b, &bun) == nil && bun.ResourceType == "Bundle" && importableBundles[bun.Type] {
			bodies = nil
			for _, e := range bun.Entry {
				if e.Resource != nil {
					bodies = append(bodies, e.Resource)
				}
			}
		}
		for _, body := range bodies {
			// The Writer's own rule beside the codec's: an id the REST API
			// would refuse in a URL.
			if res, err := codec.Parse(body); err != nil || (res.ID() != "" && bundle.CheckID(res.ID()) != nil) {
				rejected++
			}
		}
	}
	return rejected, nil
}

// BenchmarkImport imports generated ~1 KB Patients from NDJSON into a new
// embedded store (CMTS_BENCH_IMPORT_N of them, default 100,000) and reports
// resources/s and the peak heap; beside it, the rate at which the codec
// (google/fhir/go) alone parses the same lines, the ceiling import is a
// fraction of. Run with -benchtime 1x. Both run with the garbage collector
// set as import sets it (gcConfig).
func BenchmarkImport(b *testing.B) {
	b.Cleanup(defaultGC().apply())
	n := 100_000
	if s := os.Getenv("CMTS_BENCH_IMPORT_N"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	// The input is streamed to and from disk, so that the heap measured is
	// the import's, not the benchmark's copy of the input.
	f := filepath.Join(b.TempDir(), "patients.ndjson")
	out, err := os.Create(f)
	if err != nil {
		b.Fatal(err)
	}
	writeNDJSON(out, n, false)
	if err := out.Close(); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(f)
	if err != nil {
		b.Fatal(err)
	}
	codec, err := fhir.NewCodec()
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var importRate, parseRate, importCPU, parseCPU float64
	var peak uint64
	for range b.N {
		data := b.TempDir()
		batch := "500"
		stop := make(chan struct{})
		peakc := make(chan uint64)
		go func() {
			var ms runtime.MemStats
			var hi uint64
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				runtime.ReadMemStats(&ms)
				hi = max(hi, ms.HeapAlloc)
				select {
				case <-stop:
					peakc <- hi
					return
				case <-tick.C:
				}
			}
		}()
		runtime.GC()
		start, cpu0 := time.Now(), resttest.CPUTime()
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"import", "--data", data, "--batch", batch, f}, &out, &errb)
		elapsed := time.Since(start)
		importCPU = float64((resttest.CPUTime() - cpu0).Microseconds()) / float64(n)
		close(stop)
		peak = max(peak, <-peakc)
		if code != 0 {
			b.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
		}
		importRate = float64(n) / elapsed.Seconds()

		cpu0 = resttest.CPUTime()
		parseRate = parseAll(b, codec, f, n)
		parseCPU = float64((resttest.CPUTime() - cpu0).Microseconds()) / float64(n)
	}
	b.ReportMetric(importRate, "resources/s")
	b.ReportMetric(parseRate, "parse-resources/s")
	b.ReportMetric(importRate/parseRate, "fraction-of-parse")
	b.ReportMetric(importCPU, "cpu-µs/resource")
	b.ReportMetric(parseCPU, "parse-cpu-µs/resource")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(fi.Size())/float64(n), "bytes/resource")
}

// parseAll parses the n lines of the NDJSON file f with the codec alone and
// returns the rate, resources/s.
func parseAll(b *testing.B, codec *fhir.Codec, f string, n int) float64 {
	in, err := os.Open(f)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	start := time.Now()
	got := 0
	for sc.Scan() {
		if _, err := codec.Parse(sc.Bytes()); err != nil {
			b.Fatal(err)
		}
		got++
	}
	if err := sc.Err(); err != nil || got != n {
		b.Fatalf("parsed %d of %d lines: %v", got, n, err)
	}
	return float64(n) / time.Since(start).Seconds()
}

func TestImportFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		args    []string
		want    importConfig
		wantErr string
	}{
		{name: "defaults", args: []string{"a.ndjson"},
			want: importConfig{Config: Config{Data: "./data", MongoDB: "cmts", MongoLease: 30 * time.Second, GC: defaultGC()}, Tenant: "default", Batch: 500, OnError: "stop", Paths: []string{"a.ndjson"}}},
		{name: "flags after paths", args: []string{"--data", "/d", "a", "--batch", "7", "b", "--on-error", "skip", "--tenant", "h1", "--require-profiles", "--gc-percent", "150", "--memory-limit", "300MiB"},
			want: importConfig{Config: Config{Data: "/d", MongoDB: "cmts", MongoLease: 30 * time.Second, RequireProfiles: true, GC: gcConfig{Percent: 150, Limit: 300 << 20}}, Tenant: "h1", Batch: 7, OnError: "skip", Paths: []string{"a", "b"}}},
		{name: "bad gc percent", args: []string{"--gc-percent", "-3", "a"}, wantErr: "--gc-percent"},
		{name: "no path", args: []string{"--batch", "2"}, wantErr: "no PATH"},
		{name: "zero batch", args: []string{"--batch", "0", "a"}, wantErr: "--batch must be positive"},
		{name: "bad on-error", args: []string{"--on-error", "ignore", "a"}, wantErr: "--on-error is stop or skip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseImportFlags(tc.args, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreUnexported(gcConfig{})); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

// TestImportProgress: a bar redrawn in place on a terminal, plain lines
// otherwise.
func TestImportProgress(t *testing.T) {
	t.Parallel()
	s := importStats{files: 1, written: 40, unchanged: 10}
	var plain bytes.Buffer
	p := newImportProgress(&plain, 4, 1000)
	p.plainEvery = 0
	p.update(s, 500)
	if got := plain.String(); !regexp.MustCompile(`^import:  50%  files 1/4  resources 50  \d+/s  ETA \S+\n$`).MatchString(got) {
		t.Errorf("plain progress %q", got)
	}
	var term bytes.Buffer
	p = newImportProgress(&term, 4, 1000)
	p.bar = newProgressBar(&term)
	p.bar.began = p.began
	p.update(s, 500)
	p.finish(s)
	if got := term.String(); !strings.HasPrefix(got, "\r[###############...............]  50%  files 1/4  resources 50") ||
		!strings.Contains(got, "\r[##############################] 100%") || !strings.HasSuffix(got, "\n") {
		t.Errorf("terminal progress %q", got)
	}
}

// TestImportRewriteMentioned: rewriting only the fullUrls an entry mentions
// (and leaving an entry that mentions none unparsed) gives what rewriting
// with every fullUrl of the Bundle gives, wherever the reference sits: a
// Reference, a uri or url value, a narrative href or src in either quote,
// behind a JSON escape; and a fullUrl inside a longer string is no mention.
func TestImportRewriteMentioned(t *testing.T) {
	t.Parallel()
	const (
		pat = "http://example.org/fhir/Patient/1"
		obs = "urn:uuid:4d8f3b4a-9c7e-4a55-8a5e-0b8a1c2d3e4f"
	)
	to := map[string]string{pat: "Patient/p1", obs: "Observation/o1", "http://example.org/fhir/Practitioner/9": "Practitioner/x9"}
	div := func(attr string) string {
		return `"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><a ` + attr + `>x</a></div>"}`
	}
	bodies := []string{
		`{"resourceType":"Observation","status":"final","code":{"text":"a"},"subject":{"reference":"` + pat + `"}}`,
		`{"resourceType":"Observation","status":"final","code":{"text":"b"},"implicitRules":"` + pat + `","derivedFrom":[{"reference":"` + obs + `"}]}`,
		`{"resourceType":"Observation",` + div(`href=\"`+pat+`\"`) + `,"status":"final","code":{"text":"c"}}`,
		`{"resourceType":"Observation",` + div(`href='`+pat+`'`) + `,"status":"final","code":{"text":"d"}}`,
		`{"resourceType":"Observation","status":"final","code":{"text":"e"},"subject":{"reference":"` + strings.ReplaceAll(pat, "/", `\/`) + `"}}`,
		`{"resourceType":"Observation","status":"final","code":{"text":"` + pat + `/more"},"subject":{"reference":"Patient/other"}}`,
		`{"resourceType":"Patient","photo":[{"url":"` + obs + `"}]}`,
		`{"resourceType":"Patient","gender":"nonsense","managingOrganization":{"reference":"` + pat + `"}}`,
	}
	ids := []string{"o1", "o2", "o3", "o4", "o5", "o6", "p1", "p2"}
	codec, err := fhir.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	im := &importer{codec: codec}
	got := make([][]byte, len(bodies))
	for i, b := range bodies {
		got[i] = []byte(b)
	}
	im.rewriteAll(got, ids, to)
	for i, b := range bodies {
		// What the rewrite with every fullUrl makes of the entry.
		want := b
		if res, err := codec.Parse([]byte(b)); err == nil {
			if n, err := res.RewriteReferences(to); err == nil && n > 0 {
				if res.ID() == "" {
					res.SetID(ids[i])
				}
				want = string(must(codec.Marshal(res)))
			}
		}
		if want != string(got[i]) {
			t.Errorf("entry %d:\n got %s\nwant %s", i, got[i], want)
		}
	}
	// The cases above are about the rewrite: most entries change.
	changed := 0
	for i := range bodies {
		if string(got[i]) != bodies[i] {
			changed++
		}
	}
	if changed != 6 {
		t.Errorf("%d entries rewritten, want 6 (all but the longer string and the invalid one)", changed)
	}
}
