// Command piazza runs and operates Piazza, an NGSI-LD context broker for
// cities on a NATS JetStream log.
//
//	piazza serve      run the broker (embedded NATS, HTTP API on :1026)
//	piazza version    print the version
//
// main is thin: it parses flags and the environment, builds a node from the
// broker packages, runs it and waits for a signal.
package main

import (
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `Piazza — an NGSI-LD context broker for cities, on a NATS JetStream log.

Usage:
  piazza <command> [flags]

Commands:
  serve     run the broker: embedded NATS, NGSI-LD API on :1026
  ingest    load datasets (CSV, JSON, portals, NGSI-v2) into a running Piazza
  validate  check NGSI-LD entity files against their Smart Data Models, offline
  quarantine  list, show, replay or drop the writes a running Piazza kept in quarantine
  bench     load a running Piazza with the standard scenarios; throughput and latency
  version   print the version

Run 'piazza <command> -h' for the flags of a command.

Examples:
  piazza serve                                  # everything in one process, data in ./data
  piazza serve --http-addr :8080 --data-dir /var/lib/piazza
  piazza serve --nats-url nats://nats-1:4222,nats://nats-2:4222 --replicas 3
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "ingest":
		return ingest(args[1:], stdout, stderr)
	case "validate":
		return validate(args[1:], os.Stdin, stdout, stderr)
	case "quarantine":
		return quarantine(args[1:], stdout, stderr)
	case "bench":
		return bench(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "piazza %s\n", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "piazza: unknown command %q\n\n%s", args[0], usage)
	return 2
}
