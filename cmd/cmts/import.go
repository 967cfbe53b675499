package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/fhir/bundle"
	"github.com/fmtbank/cmts/fhir/rest"
	"github.com/fmtbank/cmts/store"
	"golang.org/x/sync/errgroup"
)

// importConfig is what `cmts import` is told.
type importConfig struct {
	Config
	Tenant  string
	Batch   int
	OnError string
	Paths   []string
}

// parseImportFlags reads import's flags (and their CMTS_* twins); the
// arguments left are the paths to import.
func parseImportFlags(args []string, stderr io.Writer) (importConfig, error) {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: cmts import [flags] PATH...\n\nPATH: .ndjson, .ndjson.gz or .json (a resource or a Bundle) files, or directories of them\n\nflags:\n")
		fs.PrintDefaults()
	}
	var c importConfig
	storeFlags(fs, &c.Config)
	fs.StringVar(&c.Tenant, "tenant", "default", "tenant the data is written for")
	fs.IntVar(&c.Batch, "batch", 500, "resources per atomic write")
	fs.StringVar(&c.OnError, "on-error", "stop", "stop at the first bad resource, or skip it and go on")
	fs.BoolVar(&c.RequireProfiles, "require-profiles", false, "Patient, Procedure, Specimen and AdverseEvent must claim a WMT profile")
	gcFlags(fs, &c.GC)
	// Flags may follow the paths (cmts import data/ --batch 100): parse
	// what follows each path again.
	left := args
	for {
		if err := parseWithEnvArgs(fs, left); err != nil {
			return c, err
		}
		if fs.NArg() == 0 {
			break
		}
		c.Paths = append(c.Paths, fs.Arg(0))
		left = fs.Args()[1:]
	}
	if err := c.GC.parsed(fs); err != nil {
		return c, err
	}
	switch {
	case len(c.Paths) == 0:
		return c, errors.New("no PATH to import")
	case c.Batch <= 0:
		return c, fmt.Errorf("--batch must be positive, not %d", c.Batch)
	case c.OnError != "stop" && c.OnError != "skip":
		return c, fmt.Errorf("--on-error is stop or skip, not %q", c.OnError)
	case c.Tenant == "":
		return c, errors.New("--tenant must not be empty")
	}
	return c, nil
}

// parseWithEnvArgs is parseWithEnv allowing arguments after the flags; the
// environment twins are read on the first call only, so a flag on the
// command line still wins.
func parseWithEnvArgs(fs *flag.FlagSet, args []string) error {
	if fs.Parsed() {
		return fs.Parse(args)
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		f.Usage += " (env " + name + ")"
		if v, ok := os.LookupEnv(name); ok && err == nil {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, serr)
			}
		}
	})
	if err != nil {
		return err
	}
	return fs.Parse(args)
}

// runImport is `cmts import`: it writes the resources of NDJSON and JSON
// files through the same Writer as the REST API, --batch of them per
// atomic write, and reports what it did. Exit code 0 only when nothing
// failed.
func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := parseImportFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "cmts import:", err)
		return 2
	}
	files, size, err := importFiles(c.Paths)
	if err != nil {
		fmt.Fprintln(stderr, "cmts import:", err)
		return 2
	}
	defer c.GC.apply()()
	st, err := openStore(ctx, c.Config)
	if err != nil {
		fmt.Fprintln(stderr, "cmts import:", err)
		return 1
	}
	defer st.Close()
	im, err := newImporter(st, c, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "cmts import:", err)
		return 1
	}
	im.progress = newImportProgress(stderr, len(files), size)
	err = im.importAll(ctx, files)
	im.progress.finish(im.stats)
	fmt.Fprintln(stdout, im.stats.summary(time.Since(im.progress.began)))
	if err != nil {
		fmt.Fprintln(stderr, "cmts import:", err)
		return 1
	}
	if im.stats.failed > 0 {
		return 1
	}
	return 0
}

// importFiles lists the files to import, directories walked in lexical
// order (hidden files and other suffixes left out), and their total size.
func importFiles(paths []string) ([]string, int64, error) {
	var files []string
	var size int64
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, 0, err
		}
		if !fi.IsDir() {
			if importFormat(p) == "" {
				return nil, 0, fmt.Errorf("%s: not a .ndjson, .ndjson.gz or .json file", p)
			}
			files, size = append(files, p), size+fi.Size()
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if path != p && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.IsDir() || importFormat(path) == "" {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			files, size = append(files, path), size+info.Size()
			return nil
		})
		if err != nil {
			return nil, 0, err
		}
	}
	return files, size, nil
}

// importFormat is how a file is read, by its name: "ndjson", "ndjson.gz",
// "json", or "" for a file import does not read.
func importFormat(path string) string {
	switch name := strings.ToLower(path); {
	case strings.HasSuffix(name, ".ndjson"):
		return "ndjson"
	case strings.HasSuffix(name, ".ndjson.gz"):
		return "ndjson.gz"
	case strings.HasSuffix(name, ".json"):
		return "json"
	}
	return ""
}

// importStats count what an import did.
type importStats struct {
	files, written, unchanged, failed int
	// noResource counts Bundle entries without a resource (a DELETE or GET
	// request), which import has nothing to write for.
	noResource int
}

func (s importStats) resources() int { return s.written + s.unchanged + s.failed }

func (s importStats) summary(elapsed time.Duration) string {
	out := fmt.Sprintf("imported %d files: %d resources written, %d unchanged, %d failed in %s (%.0f resources/s)",
		s.files, s.written, s.unchanged, s.failed, elapsed.Round(time.Millisecond), rateOf(s.resources(), elapsed))
	if s.noResource > 0 {
		out += fmt.Sprintf("; %d Bundle entries without a resource ignored", s.noResource)
	}
	return out
}

// importItem is one resource to write and where it was read.
type importItem struct {
	where string // "file:line" or "file: entry N"
	entry *bundle.Entry
}

// importer writes resources in batches through a bundle.Writer.
type importer struct {
	w        *bundle.Writer
	codec    *fhir.Codec
	p        *fhir.Principal
	batch    int
	skip     bool
	stderr   io.Writer
	progress *importProgress
	stats    importStats

	pending []importItem
	keys    map[string]bool // Type/id of the pending items
	stopped bool
	bytes   int64 // input bytes read so far
}

func newImporter(st store.Store, c importConfig, stderr io.Writer) (*importer, error) {
	codec, err := fhir.NewCodec()
	if err != nil {
		return nil, err
	}
	engine, guide, err := withGuide(st, c.RequireProfiles)
	if err != nil {
		return nil, err
	}
	w, err := bundle.NewWriter(bundle.Options{Store: st, Codec: codec, Indexer: engine, Validator: guide})
	if err != nil {
		return nil, err
	}
	scopes := []string{"system/*.*"}
	p := &fhir.Principal{Tenant: c.Tenant, Subject: "cmts-import", Roles: []fhir.Role{fhir.RoleSystem}, Scopes: scopes, Grants: fhir.ParseScopes(scopes)}
	return &importer{w: w, codec: codec, p: p, batch: c.Batch, skip: c.OnError == "skip", stderr: stderr, keys: map[string]bool{},
		progress: newImportProgress(io.Discard, 0, 0)}, nil
}

// importAll imports the files in order; it returns a fatal error (the
// store failing, an unreadable file); bad resources are counted instead.
func (im *importer) importAll(ctx context.Context, files []string) error {
	for _, f := range files {
		im.stats.files++
		if err := im.importFile(ctx, f); err != nil {
			return err
		}
		if im.stopped {
			return nil
		}
		im.progress.update(im.stats, im.bytes)
	}
	return im.flush(ctx)
}

// countingReader counts the bytes read through it, for the progress bar.
type countingReader struct {
	r io.Reader
	n *int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
}

func (im *importer) importFile(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = countingReader{r: f, n: &im.bytes}
	switch importFormat(path) {
	case "ndjson.gz":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		defer zr.Close()
		return im.importNDJSON(ctx, path, zr)
	case "ndjson":
		return im.importNDJSON(ctx, path, r)
	}
	return im.importJSON(ctx, path, r)
}

// maxLine bounds one NDJSON line: what the REST API takes as one body.
const maxLine = rest.DefaultMaxBody

// importNDJSON reads one resource a line, streaming: memory holds a batch,
// never the file.
func (im *importer) importNDJSON(ctx context.Context, path string, r io.Reader) error {
	br := bufio.NewReaderSize(r, 256<<10)
	for n := 1; ; n++ {
		line, err := readLine(br, maxLine)
		where := path + ":" + strconv.Itoa(n)
		switch {
		case errors.Is(err, errLineTooLong):
			if ferr := im.failNow(ctx, where, err); ferr != nil || im.stopped {
				return ferr
			}
			continue
		case err != nil && err != io.EOF:
			return fmt.Errorf("%s: %w", where, err)
		}
		if len(bytes.TrimSpace(line)) > 0 {
			if aerr := im.addResource(ctx, where, path, "line "+strconv.Itoa(n), line); aerr != nil || im.stopped {
				return aerr
			}
		}
		if err == io.EOF {
			return nil
		}
	}
}

var errLineTooLong = fmt.Errorf("line longer than %d bytes (the largest body the REST API takes)", maxLine)

// readLine reads up to '\n' (not returned) or EOF; a line longer than max is
// read to its end and discarded (errLineTooLong), so memory stays bounded.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	tooLong := false
	for {
		chunk, err := br.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(chunk) > max+1 {
				tooLong, line = true, nil
			} else {
				line = append(line, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if tooLong {
			if err == nil {
				err = errLineTooLong
			} else if err == io.EOF {
				err = errLineTooLong
			}
			return nil, err
		}
		return bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r")), err
	}
}

// importableBundles are the Bundle types whose entries are imported one by
// one; any other Bundle (a document, a message, a history) is a resource.
var importableBundles = map[string]bool{"collection": true, "batch": true, "transaction": true, "searchset": true}

// importJSON imports a resource, or the entries of a collection, batch,
// transaction or searchset Bundle. References between the entries
// (fullUrl, urn:uuid:) are rewritten to the ids the entries get.
func (im *importer) importJSON(ctx context.Context, path string, r io.Reader) error {
	body, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var b struct {
		ResourceType string `json:"resourceType"`
		Type         string `json:"type"`
		Entry        []struct {
			FullURL  string          `json:"fullUrl"`
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.ResourceType != "Bundle" || !importableBundles[b.Type] {
		return im.addResource(ctx, path, path, "", body)
	}
	// The id each entry gets, so that references to its fullUrl can name it.
	to := map[string]string{}
	ids := make([]string, len(b.Entry))
	for i, e := range b.Entry {
		h, err := headerOf(e.Resource)
		if err != nil || h.ResourceType == "" {
			continue
		}
		ids[i] = stableID(path, "entry "+strconv.Itoa(i))
		if h.ID != nil {
			ids[i] = *h.ID
		}
		if e.FullURL != "" {
			to[e.FullURL] = h.ResourceType + "/" + ids[i]
		}
	}
	bodies := make([][]byte, len(b.Entry))
	for i, e := range b.Entry {
		bodies[i] = e.Resource
	}
	if len(to) > 0 {
		im.rewriteAll(bodies, ids, to)
	}
	for i, body := range bodies {
		where := path + ": entry " + strconv.Itoa(i)
		if len(bytes.TrimSpace(body)) == 0 || string(bytes.TrimSpace(body)) == "null" {
			im.stats.noResource++
			continue
		}
		if err := im.addResource(ctx, where, path, "entry "+strconv.Itoa(i), body); err != nil || im.stopped {
			return err
		}
	}
	return nil
}

// rewriteAll rewrites, in the bodies of a Bundle's entries (ids[i]: the id
// entry i gets, "" for an entry that is no resource), the references to
// the entries' fullUrls (keys of to), and gives an entry that had no id
// and refers to one its id. Entries are independent, so they are done on
// every core: a Bundle of the official examples has thousands. Parse errors
// are left for the Writer to report, as it reports them for any resource.
func (im *importer) rewriteAll(bodies [][]byte, ids []string, to map[string]string) {
	exact := tokenKeys(to)
	forEach(len(bodies), func(i int) {
		if ids[i] == "" {
			return
		}
		keys := to
		if exact {
			// Only the fullUrls the entry mentions can be rewritten in it:
			// without them the entry is left as it is, unparsed, and the
			// rewriter does not try thousands of keys on each narrative.
			m, sure := mentioned(bodies[i], to)
			if sure && len(m) == 0 {
				return
			}
			if sure {
				keys = m
			}
		}
		res, err := im.codec.Parse(bodies[i])
		if err != nil {
			return
		}
		if n, err := res.RewriteReferences(keys); err != nil || n == 0 {
			return
		}
		if res.ID() == "" {
			res.SetID(ids[i])
		}
		if out, err := im.codec.Marshal(res); err == nil {
			bodies[i] = out
		}
	})
}

// isTokenSep reports whether c ends a token for mentioned: a JSON string's
// quote or escape, a narrative attribute's quote or '=', markup, space.
func isTokenSep(c byte) bool {
	switch c {
	case '"', '\\', '\'', '=', '<', '>', ' ', '\t', '\r', '\n':
		return true
	}
	return c < 0x20
}

// tokenKeys reports whether every key of to is a token mentioned can find:
// one without a separator in it.
func tokenKeys(to map[string]string) bool {
	for k := range to {
		if k == "" {
			return false
		}
		for i := 0; i < len(k); i++ {
			if isTokenSep(k[i]) {
				return false
			}
		}
	}
	return true
}

// mentioned returns the keys of to (each a tokenKeys key) that occur in the
// JSON body as a token between separators. Every place the rewriter can
// change holds its key so: a string value equal to it is the token between
// its quotes, a narrative href or src equal to it the token between the
// attribute's quotes (escaped or not). It is not sure (ok false) when the
// body has \u or \/ escapes, which could spell a key otherwise.
func mentioned(body []byte, to map[string]string) (keys map[string]string, ok bool) {
	if bytes.Contains(body, []byte(`\u`)) || bytes.Contains(body, []byte(`\/`)) {
		return nil, false
	}
	keys = map[string]string{}
	for start, i := 0, 0; i <= len(body); i++ {
		if i < len(body) && !isTokenSep(body[i]) {
			continue
		}
		if i > start {
			if v, hit := to[string(body[start:i])]; hit {
				keys[string(body[start:i])] = v
			}
		}
		start = i + 1
	}
	return keys, true
}

// forEach calls f(i) for every i in [0, n), on every core (f of different
// i must not share what they change).
func forEach(n int, f func(i int)) {
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i := range n {
		g.Go(func() error { f(i); return nil })
	}
	_ = g.Wait() // f returns nothing to wait for but its end
}

// resourceHeader is what import reads of a resource before the Writer
// does: its type and id.
type resourceHeader struct {
	ResourceType string  `json:"resourceType"`
	ID           *string `json:"id"`
}

func headerOf(body []byte) (resourceHeader, error) {
	var h resourceHeader
	err := json.Unmarshal(body, &h)
	return h, err
}

// stableID is the id a resource without one gets: the same for the same
// file and position on every run, so a rerun finds what an earlier run
// wrote instead of creating it again.
func stableID(path, position string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	sum := sha256.Sum256([]byte(path + "\x00" + position))
	return hex.EncodeToString(sum[:16])
}

// withID inserts "id" as the first member of a JSON object that has none.
func withID(body []byte, id string) []byte {
	i := bytes.IndexByte(body, '{')
	if i < 0 {
		return body
	}
	out := make([]byte, 0, len(body)+len(id)+8)
	out = append(out, body[:i+1]...)
	out = append(out, `"id":"`...)
	out = append(out, id...)
	out = append(out, '"')
	if rest := bytes.TrimSpace(body[i+1:]); len(rest) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, body[i+1:]...)
}

// addResource queues a resource as PUT Type/id (KeepUnchanged: a rerun
// stores nothing new); one without an id gets stableID's.
func (im *importer) addResource(ctx context.Context, where, path, position string, body []byte) error {
	h, err := headerOf(body)
	if err != nil {
		return im.failNow(ctx, where, fhir.Invalid(fhir.IssueStructure, "Not a JSON object: "+err.Error(), "不是 JSON 对象："+err.Error()))
	}
	if h.ResourceType == "" {
		return im.failNow(ctx, where, fhir.Invalid(fhir.IssueRequired, "The resource has no resourceType", "资源缺少 resourceType"))
	}
	id := ""
	if h.ID == nil {
		id = stableID(path, position)
		body = withID(body, id)
	} else {
		id = *h.ID
	}
	key := h.ResourceType + "/" + id
	if im.keys[key] {
		// The same resource twice: write the first before the second, as
		// two PUTs in a row would.
		if err := im.flush(ctx); err != nil || im.stopped {
			return err
		}
	}
	im.keys[key] = true
	im.pending = append(im.pending, importItem{where: where, entry: &bundle.Entry{Method: http.MethodPut, URL: key,
		Type: h.ResourceType, ID: id, Resource: body, KeepUnchanged: true}})
	if len(im.pending) >= im.batch {
		return im.flush(ctx)
	}
	return nil
}

// failNow reports a resource import cannot even hand to the Writer; under
// --on-error stop, what came before it is committed first.
func (im *importer) failNow(ctx context.Context, where string, err error) error {
	if !im.skip {
		if ferr := im.flush(ctx); ferr != nil || im.stopped {
			return ferr
		}
		im.stopped = true
	}
	im.fail(where, err)
	return nil
}

func (im *importer) fail(where string, err error) {
	im.stats.failed++
	im.progress.clear()
	fmt.Fprintf(im.stderr, "%s: %s\n", where, reason(err))
}

// reason is an error on one line: the first issue's English text and the
// element it concerns.
func reason(err error) string {
	var fe *fhir.Error
	if errors.As(err, &fe) && len(fe.Issues) > 0 {
		msg := fe.Error()
		if ex := fe.Issues[0].Expression; len(ex) > 0 {
			msg += " (" + strings.Join(ex, ", ") + ")"
		}
		return strings.ReplaceAll(msg, "\n", " ")
	}
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

// flush writes the pending resources in one Writer call (one atomic store
// write). A bad resource fails the whole call, so it is taken out and the
// call repeated: with --on-error skip the rest is written; with stop, what
// came before it is, and the import stops there.
func (im *importer) flush(ctx context.Context) error {
	items := im.pending
	im.pending, im.keys = nil, map[string]bool{}
	var stopAt *importItem
	var stopErr error
	for len(items) > 0 {
		entries := make([]*bundle.Entry, len(items))
		for i := range items {
			items[i].entry.Index = i
			entries[i] = items[i].entry
		}
		results, err := im.w.Write(ctx, im.p, entries)
		var ee *bundle.EntryError
		if errors.As(err, &ee) && ee.Index >= 0 && ee.Index < len(items) {
			if im.skip {
				im.fail(items[ee.Index].where, ee.Err)
				items = append(items[:ee.Index:ee.Index], items[ee.Index+1:]...)
			} else {
				bad := items[ee.Index]
				stopAt, stopErr = &bad, ee.Err
				items = items[:ee.Index]
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("writing %s to %s: %w", items[0].where, items[len(items)-1].where, err)
		}
		for _, r := range results {
			if r.Unchanged {
				im.stats.unchanged++
			} else {
				im.stats.written++
			}
		}
		break
	}
	if stopAt != nil {
		im.fail(stopAt.where, stopErr)
		im.stopped = true
	}
	im.progress.update(im.stats, im.bytes)
	return nil
}

// importProgress shows files, resources, rate and ETA (by bytes read): a
// bar redrawn in place on a terminal, else a line every few seconds.
type importProgress struct {
	w          io.Writer
	bar        *progressBar // nil: plain lines
	files      int
	size       int64
	began      time.Time
	printed    time.Time
	plainEvery time.Duration
}

func newImportProgress(w io.Writer, files int, size int64) *importProgress {
	p := &importProgress{w: w, files: files, size: size, began: time.Now(), printed: time.Now(), plainEvery: 10 * time.Second}
	if isTerminal(w) {
		p.bar = newProgressBar(w)
		p.bar.began = p.began
	}
	return p
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (p *importProgress) text(s importStats, read int64) (float64, string) {
	frac := 1.0
	if p.size > 0 {
		frac = min(float64(read)/float64(p.size), 1)
	}
	elapsed := time.Since(p.began)
	eta := "?"
	if frac > 0 {
		eta = etaOf((1-frac)*elapsed.Seconds(), frac)
	}
	return frac, fmt.Sprintf("files %d/%d  resources %d  %.0f/s  ETA %s", s.files, p.files, s.resources(), rateOf(s.resources(), elapsed), eta)
}

func (p *importProgress) update(s importStats, read int64) {
	if p.bar != nil {
		if time.Since(p.bar.drawn) >= 100*time.Millisecond {
			p.bar.render(p.text(s, read))
		}
		return
	}
	if time.Since(p.printed) >= p.plainEvery {
		p.printed = time.Now()
		frac, text := p.text(s, read)
		fmt.Fprintf(p.w, "import: %3.0f%%  %s\n", frac*100, text)
	}
}

// clear makes room on a terminal for a line of its own.
func (p *importProgress) clear() {
	if p.bar != nil {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.bar.drawn = time.Time{}
	}
}

func (p *importProgress) finish(s importStats) {
	if p.bar != nil {
		_, text := p.text(s, p.size)
		p.bar.render(1, text)
		fmt.Fprintln(p.w)
	}
}
