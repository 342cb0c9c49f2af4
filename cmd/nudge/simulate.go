package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/bus"
	"github.com/nudge-dev/nudge/bus/jetstream"
	"github.com/nudge-dev/nudge/journey"
	"github.com/nudge-dev/nudge/shred"
)

// simFlags are nudge simulate's own flags; the others are nudge serve's
// (--data, --journeys, --nats...), read as serve reads them.
type simFlags struct {
	journey  string
	from, to time.Time
	json     bool
}

// splitSimFlags takes nudge simulate's own flags out of args.
func splitSimFlags(args []string) (simFlags, []string, error) {
	var f simFlags
	var rest []string
	var from, to string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") {
			rest = append(rest, a)
			continue
		}
		var dst *string
		switch name {
		case "journey":
			dst = &f.journey
		case "from":
			dst = &from
		case "to":
			dst = &to
		case "json":
			f.json = !hasValue || value == "true"
			continue
		default:
			rest = append(rest, a)
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return f, nil, fmt.Errorf("--%s needs a value", name)
			}
			i++
			value = args[i]
		}
		*dst = value
	}
	if f.journey == "" {
		return f, nil, errors.New("--journey is required: the id of the journey to simulate")
	}
	var err error
	if f.from, err = time.Parse(time.RFC3339, from); err != nil {
		return f, nil, fmt.Errorf("--from: %q is not a time in RFC 3339 (2026-03-02T09:00:00Z)", from)
	}
	if f.to, err = time.Parse(time.RFC3339, to); err != nil {
		return f, nil, fmt.Errorf("--to: %q is not a time in RFC 3339 (2026-03-02T09:00:00Z)", to)
	}
	if !f.to.After(f.from) {
		return f, nil, fmt.Errorf("--to (%s) must be after --from (%s)", to, from)
	}
	return f, rest, nil
}

// simReport is what nudge simulate prints.
type simReport struct {
	Journey     string           `json:"journey"`
	Version     int              `json:"version"`
	From        time.Time        `json:"from"`
	To          time.Time        `json:"to"`
	Events      int              `json:"events"` // events replayed
	Entered     int64            `json:"entered"`
	Active      int64            `json:"active"` // runs not ended at --to
	Sends       map[string]int64 `json:"sends"`  // by step
	Exits       map[string]int64 `json:"exits"`
	Conversions int64            `json:"conversions"`
	Skipped     map[string]int64 `json:"skipped,omitempty"`
}

// runSimulate runs nudge simulate: the events the log received between
// --from and --to go through the journey in a sandbox (a virtual clock, a
// new profile store in a temporary directory, channels that send
// nothing), and the journey's counters are reported.
func runSimulate(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	sf, rest, err := splitSimFlags(args)
	if err != nil {
		return err
	}
	cfg, err := loadConfig("nudge simulate", rest, getenv)
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
	var j *journey.Journey
	var ids []string
	for _, x := range js {
		ids = append(ids, x.ID)
		if x.ID == sf.journey {
			j = x
		}
	}
	if j == nil {
		return fmt.Errorf("--journey: no journey has the id %q (there are: %s)", sf.journey, strings.Join(ids, ", "))
	}

	// The data directory, as nudge serve leaves it: no server may run on it.
	if _, err := os.Stat(filepath.Join(cfg.Data, keyringFile)); err != nil {
		return fmt.Errorf("--data: %s holds no nudge data (%w)", cfg.Data, err)
	}
	unlock, err := lockDataDir(cfg.Data)
	if err != nil {
		return err
	}
	defer unlock()
	keys, err := shred.Open(filepath.Join(cfg.Data, keyringFile))
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	defer keys.Close()
	log, err := jetstream.Open(ctx, jetstream.Config{
		URL: cfg.NATS, Stream: cfg.NATSStream, Subject: cfg.streamSubject(),
		Dir: filepath.Join(cfg.Data, jetstreamDir), Partitions: cfg.Partitions,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return fmt.Errorf("event log: %w", err)
	}
	defer log.Close()

	// The events received in [from, to], in the order received.
	var events []nudge.Event
	err = log.Read(ctx, bus.ReadOptions{FromTime: sf.from.Add(-time.Minute)}, func(_ context.Context, m bus.Message) error {
		batch, err := nudge.DecodeEvents(m.Payload)
		if err != nil {
			return fmt.Errorf("log message %d: %w", m.Seq, err)
		}
		for _, e := range batch {
			if e.ReceivedAt.Before(sf.from) || e.ReceivedAt.After(sf.to) || e.Type == nudge.Erase {
				continue
			}
			if err := shred.OpenEvent(keys, &e); err != nil {
				if errors.Is(err, shred.ErrShredded) {
					continue // an erased person
				}
				return err
			}
			events = append(events, e)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("event log: %w", err)
	}
	slices.SortStableFunc(events, func(a, b nudge.Event) int { return a.ReceivedAt.Compare(b.ReceivedAt) })

	dir, err := os.MkdirTemp("", "nudge-simulate-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sb, err := journey.NewSandbox(journey.SandboxConfig{Dir: dir, Start: sf.from, Journeys: []*journey.Journey{j}, Partitions: cfg.Partitions})
	if err != nil {
		return err
	}
	defer sb.Close()
	for _, e := range events {
		if err := sb.RunUntil(e.ReceivedAt); err != nil {
			return err
		}
		if err := sb.Send(e); err != nil {
			return err
		}
	}
	if err := sb.RunUntil(sf.to); err != nil {
		return err
	}

	rep := simReport{Journey: j.ID, Version: j.Version, From: sf.from, To: sf.to, Events: len(events),
		Sends: map[string]int64{}, Exits: map[string]int64{}}
	for _, m := range sb.Sent() {
		rep.Sends[m.Step]++
	}
	if view, err := sb.Runtime.Stats(j.ID); err == nil {
		for _, v := range view.Versions {
			if v.Version != j.Version {
				continue
			}
			rep.Entered, rep.Active, rep.Conversions, rep.Skipped = v.Entered, v.Active, v.Conversions, v.Skipped
			for k, n := range v.Exits {
				rep.Exits[k] = n
			}
		}
	}
	if sf.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	writeSimReport(stdout, &rep)
	return nil
}

func writeSimReport(w io.Writer, r *simReport) {
	fmt.Fprintf(w, "journey %s, events received %s to %s: %d replayed, nothing sent\n\n",
		r.Journey, r.From.Format(time.RFC3339), r.To.Format(time.RFC3339), r.Events)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "entered\t%d\n", r.Entered)
	fmt.Fprintf(tw, "active at the end\t%d\n", r.Active)
	fmt.Fprintf(tw, "conversions\t%d\n", r.Conversions)
	for _, k := range slices.Sorted(maps.Keys(r.Skipped)) {
		fmt.Fprintf(tw, "skipped (%s)\t%d\n", k, r.Skipped[k])
	}
	tw.Flush()
	fmt.Fprintln(w, "\nsends by step:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(r.Sends) == 0 {
		fmt.Fprintln(tw, "  (none)")
	}
	for _, k := range slices.Sorted(maps.Keys(r.Sends)) {
		fmt.Fprintf(tw, "  %s\t%d\n", k, r.Sends[k])
	}
	tw.Flush()
	fmt.Fprintln(w, "\nexits by reason:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(r.Exits) == 0 {
		fmt.Fprintln(tw, "  (none)")
	}
	for _, k := range slices.Sorted(maps.Keys(r.Exits)) {
		fmt.Fprintf(tw, "  %s\t%d\n", k, r.Exits[k])
	}
	tw.Flush()
}
