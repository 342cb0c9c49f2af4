// Command nudge-load is the load tool every ingest number in BENCHMARKS.md is
// reproduced with.
//
//	nudge-load ref     --addr 127.0.0.1:0 --file PATH      reference server
//	nudge-load run     --url http://127.0.0.1:8080 ...     load generator
//	nudge-load compare --url http://127.0.0.1:8080 ...     nudge vs reference
//	nudge-load probe   --url http://127.0.0.1:8080 ...     profile read latency
//	nudge-load receive --addr 127.0.0.1:18384              webhook receiver: time to trigger
//
// The reference server is a deliberately small Segment-compatible ingest
// server that decodes each event with encoding/json, appends the raw bodies to
// one file and group-commits them with one fdatasync per round. It is the
// machine's practical ceiling for durable ingest; nudge figures are quoted as
// a ratio to it.
//
// Typical runs:
//
//	# closed loop, 64 clients, 100 x 500 B events per request, 3 s warmup + 20 s
//	nudge-load run --url http://127.0.0.1:8080 --write-key KEY --pid $(pidof nudge)
//
//	# open loop: 500 requests/s on a fixed timetable, latency from the schedule
//	nudge-load run --url http://127.0.0.1:8080 --rate 500 --duration 60s
//
//	# one event per request
//	nudge-load run --url http://127.0.0.1:8080 --mode track --clients 128
//
//	# nudge, then the reference, same load; prints the events/s ratio
//	nudge-load compare --url http://127.0.0.1:8080 --pid $(pidof nudge) --ref-dir /var/lib/nudge
//
// The text report goes to stdout, or to stderr with --json, which prints one
// JSON result object on stdout. Build without GOEXPERIMENT settings: the
// reference decodes with encoding/json, whose speed they change.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: nudge-load <command> [flags]

commands:
  ref      run the reference ingest server (group-committed, fdatasync'd file)
  run      generate Segment-API load against a server and report throughput,
           latency, and (with --pid) the target's CPU and RSS
  compare  run the same load against --url and against a reference server
           started for the occasion, and print the ratio nudge/reference
  probe    read profiles (GET /v1/profiles/{id}) at a fixed rate and report
           their latency, while a run loads the server
  receive  receive journeys' webhooks and report the time from the client's
           send of the triggering event to the webhook's arrival

"nudge-load <command> -h" lists a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "ref":
		err = refMain(ctx, args, os.Stdout)
	case "run":
		err = runMain(ctx, args, os.Stdout, os.Stderr)
	case "compare":
		err = compareMain(ctx, args, os.Stdout, os.Stderr)
	case "probe":
		err = probeMain(ctx, args, os.Stdout)
	case "receive":
		err = receiveMain(ctx, args, os.Stdout)
	case "-h", "-help", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "nudge-load: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nudge-load:", err)
		os.Exit(1)
	}
}
