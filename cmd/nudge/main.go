// Command nudge is the real-time, event-driven marketing engine.
//
//	nudge serve            run everything (embedded event log by default)
//	nudge check            validate the configuration and exit
//	nudge events tail      print the live event stream of a running nudge
//	nudge test [dir]       run the journey tests
//	nudge simulate         replay recorded events through a journey
//	nudge dlq ...          list, show, redrive, discard dead letters
//	nudge version          print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

const usage = `nudge: real-time, event-driven marketing

Usage:
  nudge serve [flags]          run nudge (embedded event log, data in ./nudge-data)
  nudge check [flags]          validate the configuration and exit
  nudge events tail [flags]    print the live event stream of a running nudge
  nudge test [dir]             run the journey tests (*_test.yaml) of dir or of the examples
  nudge simulate [flags]       replay recorded events through a journey, sending nothing
  nudge dlq list|show|redrive|discard [ID] [flags]
                               the dead-letter queue of a running nudge
  nudge version                print the version

Run "nudge serve -h" for the flags; each is also NUDGE_<FLAG> in the
environment and a key of the YAML file given by --config.
`

func main() {
	if os.Getenv("GOMAXPROCS") == "" {
		// One more P than cores: a goroutine blocked in the WAL's fdatasync
		// holds its P until the scheduler notices, which otherwise idles a
		// core on a 2-core machine (measured: 168k -> 212k events/s; see
		// docs/ARCHITECTURE.md).
		runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 1)
	}
	ctx, stop := signalContext()
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nudge:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return runServe(ctx, rest, stdout, stderr, getenv)
	case "check":
		return runCheck(rest, stdout, getenv)
	case "events":
		return runEvents(ctx, rest, stdout, getenv)
	case "test":
		return runTest(ctx, rest, stdout, stderr)
	case "simulate":
		return runSimulate(ctx, rest, stdout, getenv)
	case "dlq":
		return runDLQ(ctx, rest, stdout, getenv)
	case "version":
		fmt.Fprintln(stdout, "nudge", buildVersion())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

func runCheck(args []string, stdout io.Writer, getenv func(string) string) error {
	cfg, err := loadConfig("nudge check", args, getenv)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	js, err := loadJourneys(cfg)
	if err != nil {
		return err
	}
	tests, err := loadJourneyTests(cfg)
	if err != nil {
		return err
	}
	chans, err := checkChannels(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "configuration ok, %d channels ok, %d journeys ok, %d journey test files ok\n", chans, len(js), tests)
	return nil
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return info.Main.Version
	}
	return "(devel)"
}

// signalContext is cancelled by the first SIGINT or SIGTERM, which starts a
// graceful shutdown; a second one exits at once.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-ch
		cancel()
		<-ch
		fmt.Fprintln(os.Stderr, "nudge: second signal, exiting now")
		os.Exit(2)
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}
