// Package fhirtest provides test fixtures shared by the cmts test suites:
// the pinned npm packages under testdata/npm (the HL7 FHIR R4 examples, the
// HL7 FHIRPath reference implementation and the JavaScript FHIR clients),
// installed on demand into a per-user cache directory; the main function
// and the up-to-date test of the generators that make Go tables from those
// packages; and the file lock that makes parallel test processes wait for
// one another.
//
// It is an ordinary package so that tests in any folder can import it, but
// it is meant to be used only from tests.
package fhirtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// installTimeout bounds one `npm ci` run.
const installTimeout = 10 * time.Minute

// markerName is written into the cache directory after a successful install.
const markerName = ".cmts-install-complete"

var (
	installMu    sync.Mutex
	installDone  bool
	installedDir string // node_modules path once installed in this process
	installErr   error  // why the install failed, remembered for later tests
)

// NodeModules returns the absolute path of a node_modules directory that
// holds the npm packages pinned in testdata/npm/package-lock.json.
//
// The packages are installed with `npm ci` into
// os.UserCacheDir()/cmts-test/npm-<hash of the package files> the first time
// they are needed, and reused afterwards. An exclusive file lock makes
// parallel test processes (go test ./... runs packages in parallel) wait for
// a single install. If npm is missing or the install fails, the test is
// skipped, or failed when the environment variable CI is non-empty.
func NodeModules(t testing.TB) string {
	t.Helper()
	installMu.Lock()
	if !installDone {
		installedDir, installErr = install()
		installDone = true
	}
	dir, err := installedDir, installErr
	installMu.Unlock()
	if err != nil {
		unavailable(t, err)
	}
	return dir
}

// unavailable skips the test, or fails it when running under CI.
func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("fhirtest: npm test packages unavailable: %v", err)
	}
	t.Skipf("fhirtest: npm test packages unavailable (set CI=1 to make this fatal): %v", err)
}

// npmSourceDir returns testdata/npm of this module, found from this source
// file, or (when built with -trimpath) from the working directory upwards.
func npmSourceDir() (string, error) {
	const rel = "testdata/npm/package-lock.json"
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		dir := filepath.Join(filepath.Dir(file), "..", "..", "testdata", "npm")
		if _, err := os.Stat(filepath.Join(dir, "package-lock.json")); err == nil {
			return dir, nil
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(rel))); err == nil {
			return filepath.Join(dir, "testdata", "npm"), nil
		}
		if filepath.Dir(dir) == dir {
			return "", errors.New("testdata/npm not found from the source file or " + wd)
		}
	}
}

func install() (string, error) {
	src, err := npmSourceDir()
	if err != nil {
		return "", err
	}
	pkg, err := os.ReadFile(filepath.Join(src, "package.json"))
	if err != nil {
		return "", err
	}
	lock, err := os.ReadFile(filepath.Join(src, "package-lock.json"))
	if err != nil {
		return "", err
	}
	npmrc, err := os.ReadFile(filepath.Join(src, ".npmrc"))
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, b := range [][]byte{lock, pkg, npmrc} {
		h.Write(b)
		h.Write([]byte{0})
	}
	sum := hex.EncodeToString(h.Sum(nil))[:16]

	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "cmts-test", "npm-"+sum)
	nodeModules := filepath.Join(dir, "node_modules")
	if complete(dir, sum) {
		return nodeModules, nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", fmt.Errorf("npm not found: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	unlock, err := LockFile(filepath.Join(dir, ".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	// Another process may have finished the install while we waited.
	if complete(dir, sum) {
		return nodeModules, nil
	}
	if err := os.WriteFile(filepath.Join(dir, "package.json"), pkg, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "package-lock.json"), lock, 0o644); err != nil {
		return "", err
	}
	// The project .npmrc (legacy-peer-deps) must match the one the lock
	// file was made with, or npm ci rejects the lock file.
	if err := os.WriteFile(filepath.Join(dir, ".npmrc"), npmrc, 0o644); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts")
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("npm ci in %s: %v\n%s", dir, err, tail(out.String(), 4000))
	}
	if err := os.WriteFile(filepath.Join(dir, markerName), []byte(sum+"\n"), 0o644); err != nil {
		return "", err
	}
	return nodeModules, nil
}

// complete reports whether dir holds a finished install for sum.
func complete(dir, sum string) bool {
	b, err := os.ReadFile(filepath.Join(dir, markerName))
	if err != nil || strings.TrimSpace(string(b)) != sum {
		return false
	}
	fi, err := os.Stat(filepath.Join(dir, "node_modules"))
	return err == nil && fi.IsDir()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// ExamplesDir returns the directory of the hl7.fhir.r4.examples package,
// which holds the FHIR R4 specification's example resources and its
// conformance resources (StructureDefinition, SearchParameter, ...), one
// JSON file each, named <resourceType>-<id>.json.
//
// npm strips the tarball's "package/" prefix, so this is the package root
// node_modules/hl7.fhir.r4.examples; a "package" subfolder is used instead
// if one exists (as in a FHIR package cache).
func ExamplesDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(NodeModules(t), "hl7.fhir.r4.examples")
	if fi, err := os.Stat(filepath.Join(dir, "package")); err == nil && fi.IsDir() {
		dir = filepath.Join(dir, "package")
	}
	if _, err := os.Stat(filepath.Join(dir, "package.json")); err != nil {
		unavailable(t, err)
	}
	return dir
}

var (
	indexMu    sync.Mutex
	indexCache map[string][]indexFile // examples dir -> files
)

type indexFile struct {
	Filename     string `json:"filename"`
	ResourceType string `json:"resourceType"`
}

// ExampleFiles returns the absolute paths, sorted, of the example JSON
// resources of the given resource type in ExamplesDir, or of every resource
// when resourceType is "". It uses the package's .index.json when present
// and otherwise reads resourceType from each file.
func ExampleFiles(t testing.TB, resourceType string) []string {
	t.Helper()
	dir := ExamplesDir(t)
	files, err := loadIndex(dir)
	if err != nil {
		t.Fatalf("fhirtest: indexing %s: %v", dir, err)
	}
	var out []string
	for _, f := range files {
		if resourceType == "" || f.ResourceType == resourceType {
			out = append(out, filepath.Join(dir, f.Filename))
		}
	}
	return out
}

func loadIndex(dir string) ([]indexFile, error) {
	indexMu.Lock()
	defer indexMu.Unlock()
	if files, ok := indexCache[dir]; ok {
		return files, nil
	}
	files, err := readIndex(dir)
	if err != nil {
		return nil, err
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Filename < files[j].Filename })
	if indexCache == nil {
		indexCache = map[string][]indexFile{}
	}
	indexCache[dir] = files
	return files, nil
}

// builtIndexName is the index that readIndex writes into the examples
// directory (in the test cache) when the package has no .index.json, so
// that later test processes need not read every file again.
const builtIndexName = ".cmts-index.json"

type index struct {
	Files []indexFile `json:"files"`
}

func readIndex(dir string) ([]indexFile, error) {
	for _, name := range []string{".index.json", builtIndexName} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
			var idx index
			if err := json.Unmarshal(b, &idx); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if len(idx.Files) > 0 {
				return idx.Files, nil
			}
		}
	}
	files, err := scanDir(dir)
	if err != nil {
		return nil, err
	}
	// Best effort: write the index atomically for the next process.
	if b, err := json.Marshal(index{files}); err == nil {
		if f, err := os.CreateTemp(dir, builtIndexName+".*"); err == nil {
			werr := f.Chmod(0o644)
			if werr == nil {
				_, werr = f.Write(b)
			}
			if cerr := f.Close(); werr == nil && cerr == nil {
				werr = os.Rename(f.Name(), filepath.Join(dir, builtIndexName))
			}
			if werr != nil {
				os.Remove(f.Name())
			}
		}
	}
	return files, nil
}

// scanDir reads the resourceType of every JSON resource file in dir.
func scanDir(dir string) ([]indexFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []indexFile
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".json") || name == "package.json" || strings.HasPrefix(name, ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		var head struct {
			ResourceType string `json:"resourceType"`
		}
		if json.Unmarshal(b, &head) != nil || head.ResourceType == "" {
			continue
		}
		files = append(files, indexFile{Filename: name, ResourceType: head.ResourceType})
	}
	return files, nil
}
