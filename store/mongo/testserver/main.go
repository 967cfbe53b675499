// Command testserver runs an embedded FerretDB v1 (MongoDB wire protocol over
// SQLite) for the tests of the MongoDB store. It is its own Go module so that
// FerretDB's large dependency graph never enters the server's root module.
//
// It is built and started by package
// github.com/fmtbank/cmts/store/mongo/mongotest; it is not meant to be run by
// hand, although that works:
//
//	go run . -listen 127.0.0.1:27017 -dir /tmp/ferretdb-data
//
// It listens on -listen, keeps its SQLite files in -dir (created if missing,
// written without fsync) and runs until SIGTERM or SIGINT, then closes the
// listener and the backend and exits 0. Startup failures exit 1. Logging is
// at warn level and above, on stderr.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on (host:port)")
	dir := flag.String("dir", "", "directory for the SQLite data files (required)")
	flag.Parse()

	if err := run(*listen, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "testserver:", err)
		os.Exit(1)
	}
}

func run(listen, dir string) error {
	if dir == "" {
		return fmt.Errorf("-dir is required")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return err
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	slog.SetDefault(logger)

	// synchronous(off): no fsync. The data lives as long as one test, and
	// a process that is stopped or killed loses nothing, since SQLite has
	// handed every commit to the operating system; only a machine crash
	// could. On a shared disk an fsync per commit made loading the search
	// table's examples wait on I/O.
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + filepath.ToSlash(abs) + "/?_pragma=synchronous(off)",
	})
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	return f.Run(ctx)
}
