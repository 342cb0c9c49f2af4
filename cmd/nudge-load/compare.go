package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// compareMain runs the same load against nudge (--url) and against a
// reference server it starts for the occasion, and prints the ratio.
func compareMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("nudge-load compare", flag.ContinueOnError)
	var cfg loadConfig
	cfg.register(fs)
	order := fs.String("order", "nudge-first", "nudge-first or ref-first: which server is loaded first")
	refDir := fs.String("ref-dir", "", "directory for the reference server's file (default: a new temp dir); put it on the same filesystem as nudge's data")
	pause := fs.Duration("pause", 2*time.Second, "idle time between runs")
	repeat := fs.Int("repeat", 1, "run the pair this many times and report the median ratio (run-to-run noise on a shared VM is easily ±10%)")
	asJSON := fs.Bool("json", false, "also print the results as one JSON object on stdout (the text report goes to stderr)")
	if err := fs.Parse(args); err != nil {
		return helpOK(err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("compare: unexpected argument %q", fs.Arg(0))
	}
	if err := cfg.finish(fs); err != nil {
		return err
	}
	if *repeat < 1 {
		return errors.New("--repeat must be at least 1")
	}
	if *order != "nudge-first" && *order != "ref-first" {
		return fmt.Errorf("--order must be nudge-first or ref-first, not %q", *order)
	}
	text := stdout
	if *asJSON {
		text = stderr
	}

	dir := *refDir
	if dir == "" {
		d, err := os.MkdirTemp("", "nudge-load-ref-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	ref, err := startRefProcess(ctx, filepath.Join(dir, fmt.Sprintf("ref-%d.ndjson", time.Now().UnixNano())))
	if err != nil {
		return fmt.Errorf("starting the reference server: %w", err)
	}
	defer ref.stop()
	if *refDir != "" {
		defer os.Remove(ref.file)
	}

	nudgeCfg, refCfg := cfg, cfg
	refCfg.URL, refCfg.PID = ref.url, ref.pid
	legs := []struct {
		name string
		cfg  loadConfig
	}{{"nudge", nudgeCfg}, {"reference", refCfg}}
	if *order == "ref-first" {
		legs[0], legs[1] = legs[1], legs[0]
	}
	cmp := comparison{Order: *order, Repeat: *repeat}
	for rep := range *repeat {
		res := map[string]*Result{}
		for i, l := range legs {
			if rep > 0 || i > 0 {
				select {
				case <-time.After(*pause):
				case <-ctx.Done():
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fmt.Fprintf(text, "== %s: %s\n", l.name, describe(l.cfg))
			r, err := runLoad(ctx, l.cfg)
			if err != nil {
				return fmt.Errorf("%s: %w", l.name, err)
			}
			r.print(text, "   ")
			res[l.name] = r
			if l.name == "reference" {
				os.Truncate(ref.file, 0) // about 110 MB/s of load; keep the disk from filling
			}
		}
		p := newPair(res["nudge"], res["reference"])
		cmp.Pairs = append(cmp.Pairs, p)
		label := "nudge/reference"
		if *repeat > 1 {
			label = fmt.Sprintf("[%d/%d] %s", rep+1, *repeat, label)
		}
		p.print(text, label)
	}
	ratios := make([]float64, len(cmp.Pairs))
	for i, p := range cmp.Pairs {
		ratios[i] = p.EventsRatio
	}
	slices.Sort(ratios)
	cmp.EventsRatio = (ratios[(len(ratios)-1)/2] + ratios[len(ratios)/2]) / 2
	if *repeat > 1 {
		fmt.Fprintf(text, "== nudge/reference events/s, median of %d: %.3f (range %.3f-%.3f)\n", *repeat, cmp.EventsRatio, ratios[0], ratios[len(ratios)-1])
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(cmp)
	}
	return nil
}

type comparison struct {
	Order       string  `json:"order"`
	Repeat      int     `json:"repeat"`
	EventsRatio float64 `json:"events_per_s_ratio"` // nudge / reference; the median over the pairs
	Pairs       []pair  `json:"pairs"`
}

// pair is one nudge run and one reference run under the same load.
type pair struct {
	EventsRatio      float64 `json:"events_per_s_ratio"` // nudge / reference
	P99Ratio         float64 `json:"p99_ratio,omitempty"`
	CPUPerEventRatio float64 `json:"cpu_per_event_ratio,omitempty"` // needs --pid for nudge
	Nudge            *Result `json:"nudge"`
	Reference        *Result `json:"reference"`
}

func newPair(nudge, ref *Result) pair {
	p := pair{Nudge: nudge, Reference: ref}
	if ref.EventsPerSec > 0 {
		p.EventsRatio = nudge.EventsPerSec / ref.EventsPerSec
	}
	if ref.Latency.P99 > 0 {
		p.P99Ratio = nudge.Latency.P99 / ref.Latency.P99
	}
	if nudge.Target != nil && ref.Target != nil && ref.Target.CPUPerEventUsec > 0 {
		p.CPUPerEventRatio = nudge.Target.CPUPerEventUsec / ref.Target.CPUPerEventUsec
	}
	return p
}

func (p pair) print(w io.Writer, label string) {
	fmt.Fprintf(w, "== %s: events/s %.3f (%s vs %s)", label, p.EventsRatio, thousands(p.Nudge.EventsPerSec), thousands(p.Reference.EventsPerSec))
	if p.P99Ratio > 0 {
		fmt.Fprintf(w, "   p99 latency %.2fx", p.P99Ratio)
	}
	if p.CPUPerEventRatio > 0 {
		fmt.Fprintf(w, "   CPU/event %.2fx", p.CPUPerEventRatio)
	}
	fmt.Fprintln(w)
	if len(p.Nudge.Errors) > 0 || len(p.Reference.Errors) > 0 {
		fmt.Fprintln(w, "== warning: errors occurred; the ratio compares accepted events only")
	}
	for _, r := range []*Result{p.Nudge, p.Reference} {
		if r.Host != nil && r.Target != nil && r.Host.OtherCores > 0.25 {
			fmt.Fprintf(w, "== warning: other work shared the machine during the run against %s\n", r.URL)
		}
	}
}

// refProcess is a reference server running as a child process (this binary,
// "ref" subcommand), so that its CPU and RSS are measured apart from the
// generator's.
type refProcess struct {
	cmd  *exec.Cmd
	url  string
	pid  int
	file string
}

func startRefProcess(ctx context.Context, file string) (*refProcess, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "ref", "--addr", "127.0.0.1:0", "--file", file)
	cmd.Stderr = os.Stderr // not our stderr writer: the child writes concurrently
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &refProcess{cmd: cmd, pid: cmd.Process.Pid, file: file}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		io.Copy(io.Discard, out)
	}()
	select {
	case l, ok := <-line:
		if u, found := strings.CutPrefix(l, "listening on "); ok && found {
			p.url = u
			return p, nil
		}
		p.stop()
		return nil, fmt.Errorf("reference server said %q", l)
	case <-time.After(10 * time.Second):
		p.stop()
		return nil, errors.New("reference server did not start in 10s")
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
}

func (p *refProcess) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}
