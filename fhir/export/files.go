package export

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Files keeps the jobs' NDJSON files. Every server instance that shares a
// store must share its Files too (GridFS on MongoDB, a directory under
// --data on the embedded store), so that any of them serves a job's files.
// Job ids and file names are short, made of letters, digits, '.', '-'
// and '_' (the worker makes them; they are checked again where they come
// from a URL).
type Files interface {
	// Create starts writing file name of job. What is written becomes the
	// file when Close returns nil, replacing a file of that name; until
	// then Open finds the earlier file or none. A writer never closed
	// leaves nothing Open finds (Remove clears what it left).
	Create(ctx context.Context, job, name string) (io.WriteCloser, error)
	// Open reads file name of job. Errors: ErrNoFile when there is none.
	Open(ctx context.Context, job, name string) (io.ReadCloser, error)
	// Remove removes every file of job, the unfinished ones included;
	// a job without files is no error.
	Remove(ctx context.Context, job string) error
}

// ErrNoFile is the error of Files.Open for a file that does not exist.
var ErrNoFile = errors.New("export: no such file")

// safeName reports whether s is usable as a job id or file name: no path
// separators, no dot-only names.
func safeName(s string) bool {
	if s == "" || strings.Trim(s, ".") == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
		default:
			return false
		}
	}
	return true
}

// Dir keeps the files in a local directory, one subdirectory per job: the
// embedded store's (under --data), or one that every instance mounts.
type Dir string

var _ Files = Dir("")

func (d Dir) path(job, name string) (string, error) {
	if !safeName(job) || name != "" && !safeName(name) {
		return "", ErrNoFile
	}
	return filepath.Join(string(d), job, name), nil
}

// Create implements Files: the file is written under a temporary name and
// renamed into place by Close, so a reader never sees half a file.
func (d Dir) Create(_ context.Context, job, name string) (io.WriteCloser, error) {
	path, err := d.path(job, name)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+name+".*.part")
	if err != nil {
		return nil, err
	}
	return &dirFile{f: f, path: path}, nil
}

type dirFile struct {
	f    *os.File
	path string
}

func (w *dirFile) Write(b []byte) (int, error) { return w.f.Write(b) }

func (w *dirFile) Close() error {
	err := errors.Join(w.f.Sync(), w.f.Close())
	if err == nil {
		err = os.Rename(w.f.Name(), w.path)
	}
	if err != nil {
		os.Remove(w.f.Name())
	}
	return err
}

// Open implements Files.
func (d Dir) Open(_ context.Context, job, name string) (io.ReadCloser, error) {
	path, err := d.path(job, name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoFile
	}
	return f, err
}

// Remove implements Files.
func (d Dir) Remove(_ context.Context, job string) error {
	path, err := d.path(job, "")
	if err != nil {
		return nil // no such job can have files
	}
	return os.RemoveAll(path)
}
