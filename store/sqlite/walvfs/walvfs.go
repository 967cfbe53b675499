// Package walvfs is a SQLite VFS (for modernc.org/sqlite) that hands a
// transaction's WAL frames to the operating system in one write instead of
// two per page.
//
// SQLite appends a commit to the WAL a frame at a time, each frame as two
// write calls (its 24-byte header, then the page), and then syncs. A group
// commit of a dozen creates dirties a few hundred pages, and on this
// project's machines the write calls cost more than the inserts that
// dirtied them. The bytes written, their offsets and the sync are
// unchanged: the frames are gathered in memory as they are appended and
// written out together before anything can depend on them being in the
// file, so a crash leaves the same possibilities as before (what was not
// synced may be missing; SQLite's frame checksums tell).
//
// When the frames are written out:
//   - before the file is synced (xSync), which SQLite does at every commit
//     under synchronous=FULL, before the commit is acknowledged or made
//     visible to readers;
//   - as soon as a commit frame is complete, so that a connection that does
//     not sync every commit (synchronous=NORMAL) publishes no commit whose
//     frames are still here;
//   - before any other use of the file (read, size, truncate, file control,
//     close), so that the writer reads back what it wrote;
//   - before a write that does not extend the gathered run, so that writes
//     reach the file in their order;
//   - when the run reaches maxRun bytes.
//
// Only appended frames are gathered. A write below the end of what was
// appended (a page a large transaction rewrites in place, and the frame
// headers whose checksums SQLite then rewrites at its commit, the last of
// which no other write follows) goes straight to the file.
//
// Only WAL files are wrapped; the database file, its shared memory and the
// journals go to the default VFS untouched.
package walvfs

import (
	"encoding/binary"
	"fmt"
	"sync"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// Name is the name the VFS is registered under: open a database through it
// with the DSN query parameter vfs=cmts-wal, after Register.
const Name = "cmts-wal"

// maxRun is the most bytes gathered before they are written out: the
// default VFS writes at most 128 KiB - 1 bytes a call (os_unix.c's
// seekAndWriteFd masks the length with 0x1ffff, and a longer write comes
// back short, as a full disk). A group commit of a dozen creates, about
// 1.4 MB, is a dozen writes instead of some 700.
const maxRun = 0x1ffff

// frameHeader is the size of a WAL frame's header; bytes 4..7 of it hold the
// database size after a commit frame, and zero in any other.
const frameHeader = 24

// The VFS's state lives at package level because SQLite's VFS registry is
// process-wide and holds C memory, which may not point into Go's heap:
// SQLite calls the functions below with the addresses of its own structs,
// and they find their Go side here.
var (
	registerOnce sync.Once
	registerErr  error

	// base is the default VFS, which does the work.
	base uintptr
	// vfs is the registered VFS: a copy of base with xOpen replaced.
	vfs sqlite3.Tsqlite3_vfs
	// walMethods is the method table of the WAL files opened through vfs:
	// that of the first one opened, with the methods below in place of
	// seven of its own. baseMethods is that original table.
	walMethods  sqlite3.Tsqlite3_io_methods
	baseMethods uintptr
	methodsOnce sync.Once

	// files maps an open WAL file (SQLite's sqlite3_file) to its run.
	files sync.Map // uintptr -> *file
)

// file is the run of writes gathered for one open WAL file. SQLite calls a
// file's methods from one connection at a time, so it needs no lock.
type file struct {
	// buf holds maxRun bytes of C memory (allocated at the first write,
	// freed at close), so that the default VFS's write, which takes the
	// address as an integer, is never handed Go's memory.
	buf uintptr
	n   int   // bytes gathered in buf
	off int64 // file offset of buf[0]
	// end is the end of the frames appended since the WAL last started
	// over (from offset 0), the gathered ones included: a write below it
	// rewrites the file in place.
	end int64
	// commitPage: the last write appended the header of a commit frame,
	// whose page comes next.
	commitPage bool
}

// Register registers the VFS with SQLite under Name (once per process).
func Register() error {
	registerOnce.Do(func() {
		tls := libc.NewTLS()
		defer tls.Close()
		base = sqlite3.Xsqlite3_vfs_find(tls, 0)
		if base == 0 {
			registerErr = fmt.Errorf("walvfs: SQLite has no default VFS")
			return
		}
		vfs = *cptr[sqlite3.Tsqlite3_vfs](base)
		vfs.FpNext = 0
		name, err := libc.CString(Name)
		if err != nil {
			registerErr = fmt.Errorf("walvfs: %w", err)
			return
		}
		vfs.FzName = name // kept for the life of the process, as the VFS is
		*(*func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32)(unsafe.Pointer(&vfs.FxOpen)) = xOpen
		if rc := sqlite3.Xsqlite3_vfs_register(tls, uintptr(unsafe.Pointer(&vfs)), 0); rc != sqlite3.SQLITE_OK {
			registerErr = fmt.Errorf("walvfs: registering the VFS: SQLite error %d", rc)
		}
	})
	return registerErr
}

// xOpen opens the file through the default VFS (with its own sqlite3_vfs,
// whose pAppData its open reads), and gives a WAL file this package's
// methods.
func xOpen(tls *libc.TLS, pVfs, zName, pFile uintptr, flags int32, pOutFlags uintptr) int32 {
	open := *(*func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32)(unsafe.Pointer(&cptr[sqlite3.Tsqlite3_vfs](base).FxOpen))
	rc := open(tls, base, zName, pFile, flags, pOutFlags)
	if rc != sqlite3.SQLITE_OK || flags&sqlite3.SQLITE_OPEN_WAL == 0 {
		return rc
	}
	f := cptr[sqlite3.Tsqlite3_file](pFile)
	methodsOnce.Do(func() { wrapMethods(f.FpMethods) })
	if f.FpMethods != baseMethods {
		return rc // some other kind of file: left as it is
	}
	files.Store(pFile, &file{})
	f.FpMethods = uintptr(unsafe.Pointer(&walMethods))
	return rc
}

func wrapMethods(m uintptr) {
	baseMethods = m
	walMethods = *cptr[sqlite3.Tsqlite3_io_methods](m)
	*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&walMethods.FxClose)) = xClose
	*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&walMethods.FxRead)) = xRead
	*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&walMethods.FxWrite)) = xWrite
	*(*func(*libc.TLS, uintptr, int64) int32)(unsafe.Pointer(&walMethods.FxTruncate)) = xTruncate
	*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&walMethods.FxSync)) = xSync
	*(*func(*libc.TLS, uintptr, uintptr) int32)(unsafe.Pointer(&walMethods.FxFileSize)) = xFileSize
	*(*func(*libc.TLS, uintptr, int32, uintptr) int32)(unsafe.Pointer(&walMethods.FxFileControl)) = xFileControl
}

// cptr turns the address of SQLite's memory, which SQLite passes as an
// integer, into a pointer. That memory is C memory (modernc.org/libc's
// allocator), outside Go's heap, so the garbage collector neither moves nor
// frees it (what vet's unsafeptr check guards against for Go's memory).
func cptr[T any](p uintptr) *T { return (*T)(unsafe.Add(nil, p)) }

// orig returns the default VFS's method table.
func orig() *sqlite3.Tsqlite3_io_methods { return cptr[sqlite3.Tsqlite3_io_methods](baseMethods) }

func lookup(pFile uintptr) *file {
	f, _ := files.Load(pFile)
	return f.(*file)
}

// flush writes the run out through the default VFS.
func (f *file) flush(tls *libc.TLS, pFile uintptr) int32 {
	if f.n == 0 {
		return sqlite3.SQLITE_OK
	}
	rc := write(tls, pFile, f.buf, int32(f.n), f.off)
	f.n = 0
	return rc
}

// write is the default VFS's xWrite.
func write(tls *libc.TLS, pFile, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	w := *(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&orig().FxWrite))
	return w(tls, pFile, zBuf, iAmt, iOfst)
}

func xWrite(tls *libc.TLS, pFile, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	f := lookup(pFile)
	b := unsafe.Slice(cptr[byte](zBuf), iAmt)
	commit := f.commitPage
	f.commitPage = false
	if f.n > 0 && (iOfst != f.end || f.n+int(iAmt) > maxRun) {
		if rc := f.flush(tls, pFile); rc != sqlite3.SQLITE_OK {
			return rc
		}
	}
	if iOfst == 0 {
		f.end = 0 // the WAL header: SQLite starts the WAL over
	}
	if iOfst < f.end || iAmt > maxRun {
		// A page or a frame's header rewritten in place (within a large
		// transaction, which then rewrites the checksums of the frames
		// after it): straight to the file, so that nothing but appended
		// frames waits here.
		return write(tls, pFile, zBuf, iAmt, iOfst)
	}
	if f.buf == 0 {
		if f.buf = libc.Xmalloc(tls, maxRun); f.buf == 0 {
			return write(tls, pFile, zBuf, iAmt, iOfst)
		}
	}
	if f.n == 0 {
		f.off = iOfst
	}
	copy(unsafe.Slice(cptr[byte](f.buf+uintptr(f.n)), iAmt), b)
	f.n += int(iAmt)
	f.end = iOfst + int64(iAmt)
	if commit {
		// the page of a commit frame: the commit is complete
		return f.flush(tls, pFile)
	}
	f.commitPage = iAmt == frameHeader && binary.BigEndian.Uint32(b[4:8]) != 0
	return sqlite3.SQLITE_OK
}

func xRead(tls *libc.TLS, pFile, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	if rc := lookup(pFile).flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	read := *(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&orig().FxRead))
	return read(tls, pFile, zBuf, iAmt, iOfst)
}

func xSync(tls *libc.TLS, pFile uintptr, flags int32) int32 {
	if rc := lookup(pFile).flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	sync := *(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&orig().FxSync))
	return sync(tls, pFile, flags)
}

func xTruncate(tls *libc.TLS, pFile uintptr, size int64) int32 {
	if rc := lookup(pFile).flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	truncate := *(*func(*libc.TLS, uintptr, int64) int32)(unsafe.Pointer(&orig().FxTruncate))
	return truncate(tls, pFile, size)
}

func xFileSize(tls *libc.TLS, pFile, pSize uintptr) int32 {
	if rc := lookup(pFile).flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	size := *(*func(*libc.TLS, uintptr, uintptr) int32)(unsafe.Pointer(&orig().FxFileSize))
	return size(tls, pFile, pSize)
}

func xFileControl(tls *libc.TLS, pFile uintptr, op int32, pArg uintptr) int32 {
	if rc := lookup(pFile).flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	control := *(*func(*libc.TLS, uintptr, int32, uintptr) int32)(unsafe.Pointer(&orig().FxFileControl))
	return control(tls, pFile, op, pArg)
}

func xClose(tls *libc.TLS, pFile uintptr) int32 {
	f := lookup(pFile)
	rc := f.flush(tls, pFile)
	if f.buf != 0 {
		libc.Xfree(tls, f.buf)
	}
	files.Delete(pFile)
	closeFile := *(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&orig().FxClose))
	if rc2 := closeFile(tls, pFile); rc == sqlite3.SQLITE_OK {
		rc = rc2
	}
	return rc
}
