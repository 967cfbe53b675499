// Command cmts runs the CMTS FHIR server for microbiota transplantation
// registries. `cmts serve` starts it; see README.md and docs/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signalContext()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// signalContext ends on SIGTERM or an interrupt: the server then stops
// accepting, finishes in-flight requests and closes the store.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
}

const usage = `usage: cmts <command> [flags]

commands:
  serve    run the FHIR server (cmts serve -h for flags)
  reindex  rebuild the search index entries of every resource (after an upgrade
           that changes search parameters; cmts reindex -h for flags)
  import   write the resources of NDJSON, NDJSON.gz and Bundle files (cmts import -h)
  gen      write a synthetic WMT registry into an empty store (cmts gen -h)
  version  print the version (also: cmts --version)

Every flag has an environment twin: CMTS_ and the flag's name in capitals,
dashes as underscores (--max-body: CMTS_MAX_BODY); a flag given on the command
line wins over its twin.
`

// run dispatches the subcommand and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		m := NewMain(stderr)
		if err := m.ParseFlags(args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			fmt.Fprintln(stderr, "cmts serve:", err)
			return 2
		}
		defer m.Config.GC.apply()()
		if err := m.Open(ctx); err != nil {
			fmt.Fprintln(stderr, "cmts serve:", err)
			return 1
		}
		err := m.Run(ctx)
		if cerr := m.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			fmt.Fprintln(stderr, "cmts serve:", err)
			return 1
		}
		return 0
	case "reindex":
		return runReindex(ctx, args[1:], stderr)
	case "import":
		return runImport(ctx, args[1:], stdout, stderr)
	case "gen":
		return runGen(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "cmts: unknown command %q\n%s", args[0], usage)
	return 2
}
