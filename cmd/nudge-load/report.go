package main

import (
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Result is one run's measurement; its JSON form is what --json prints.
type Result struct {
	URL        string  `json:"url"`
	Mode       string  `json:"mode"`
	Batch      int     `json:"batch"`
	EventSize  int     `json:"event_size"`  // requested
	EventBytes int     `json:"event_bytes"` // actual, on average (larger if event_size is below the unpadded event)
	BodyBytes  int     `json:"body_bytes"`  // uncompressed size of one request body
	Gzip       bool    `json:"gzip"`
	Clients    int     `json:"clients"`
	Rate       float64 `json:"rate,omitempty"` // open loop target, requests/s
	RunID      string  `json:"run_id"`
	WarmupSec  float64 `json:"warmup_s"`
	MeasureSec float64 `json:"measured_s"` // end of warmup to the last measured completion

	Requests     int64            `json:"requests"` // measured requests completed, ok or not
	OKRequests   int64            `json:"ok_requests"`
	Events       int64            `json:"events"` // events in 2xx answered requests
	ReqPerSec    float64          `json:"requests_per_s"`
	EventsPerSec float64          `json:"events_per_s"`
	MBPerSec     float64          `json:"mb_per_s"`         // request body bytes sent (as on the wire)
	Errors       map[string]int64 `json:"errors,omitempty"` // by status code; "transport" for no response
	FirstError   string           `json:"first_error,omitempty"`

	Latency     Latency  `json:"latency_ms"`             // 2xx only; from the scheduled send time
	StartLag    *Latency `json:"start_lag_ms,omitempty"` // open loop: actual - scheduled start
	LateStarts  int64    `json:"late_starts,omitempty"`
	LateCutoffM float64  `json:"late_cutoff_ms,omitempty"`

	Target    *ProcResult `json:"target,omitempty"`
	Generator ProcResult  `json:"generator"`
	Host      *HostResult `json:"host,omitempty"`
}

// HostResult is the whole machine's CPU use over the measured window, to
// tell a clean run from one that shared the machine with other work.
type HostResult struct {
	CPUs       int     `json:"cpus"`
	BusyCores  float64 `json:"busy_cores"`
	OtherCores float64 `json:"other_cores"` // busy minus target and generator (includes kernel work for both, e.g. loopback TCP)
}

// Latency is a distribution summary in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// ProcResult is a process's resource use over the measured window.
type ProcResult struct {
	PID             int     `json:"pid,omitempty"`
	CPUSec          float64 `json:"cpu_s"`
	Cores           float64 `json:"cores"`            // CPU seconds per wall second
	CPUPerEventUsec float64 `json:"cpu_us_per_event"` // µs of CPU per accepted event
	RSSStartMB      float64 `json:"rss_start_mb,omitempty"`
	RSSMaxMB        float64 `json:"rss_max_mb,omitempty"`
	RSSEndMB        float64 `json:"rss_end_mb,omitempty"`
	Error           string  `json:"error,omitempty"`
}

func summarize(h *histogram) Latency {
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	return Latency{
		P50: ms(h.Percentile(50)), P90: ms(h.Percentile(90)), P99: ms(h.Percentile(99)),
		P999: ms(h.Percentile(99.9)), Max: ms(h.Max()), Mean: ms(h.Mean()),
	}
}

func buildResult(cfg loadConfig, tmpl *bodyTemplate, st *loadStats, smp *procSampler, warmEnd time.Time) *Result {
	r := &Result{
		URL: cfg.URL, Mode: cfg.Mode, Batch: len(tmpl.slots), EventSize: cfg.EventSize, BodyBytes: len(tmpl.body),
		EventBytes: avg(tmpl.eventLen),
		Gzip:       cfg.Gzip, Clients: cfg.Clients, Rate: cfg.Rate, RunID: cfg.RunID, WarmupSec: cfg.Warmup.Seconds(),
		OKRequests: st.ok.Load(), Events: st.events.Load(), FirstError: st.firstErr,
		Latency: summarize(&st.lat),
	}
	r.Requests = r.OKRequests + st.failed.Load()
	if last := st.lastDone.Load(); last > 0 {
		r.MeasureSec = max(time.Unix(0, last).Sub(warmEnd).Seconds(), 0)
	}
	if r.MeasureSec > 0 {
		r.ReqPerSec = float64(r.OKRequests) / r.MeasureSec
		r.EventsPerSec = float64(r.Events) / r.MeasureSec
		r.MBPerSec = float64(st.bytes.Load()) / r.MeasureSec / 1e6
	}
	if len(st.byStatus) > 0 {
		r.Errors = map[string]int64{}
		for code, n := range st.byStatus {
			k := strconv.Itoa(code)
			if code == 0 {
				k = "transport"
			}
			r.Errors[k] = n
		}
	}
	if cfg.Rate > 0 {
		lag := summarize(&st.lag)
		r.StartLag = &lag
		r.LateStarts = st.late.Load()
		r.LateCutoffM = float64(cfg.Late) / 1e6
	}
	proc := func(pid int, cpu time.Duration, err error) ProcResult {
		p := ProcResult{PID: pid, CPUSec: cpu.Seconds()}
		if err != nil {
			p.Error = err.Error()
		}
		if r.MeasureSec > 0 {
			p.Cores = p.CPUSec / r.MeasureSec
		}
		if r.Events > 0 {
			p.CPUPerEventUsec = p.CPUSec * 1e6 / float64(r.Events)
		}
		return p
	}
	if smp.started {
		r.Generator = proc(0, smp.self1-smp.self0, nil)
		if cfg.PID > 0 {
			t := proc(cfg.PID, smp.cpu1-smp.cpu0, smp.err)
			t.RSSStartMB, t.RSSMaxMB, t.RSSEndMB = mb(smp.rss0), mb(smp.rssMax), mb(smp.rss1)
			r.Target = &t
		}
		if smp.hostErr == nil && r.MeasureSec > 0 {
			h := HostResult{CPUs: runtime.NumCPU(), BusyCores: (smp.host1 - smp.host0).Seconds() / r.MeasureSec}
			h.OtherCores = h.BusyCores - r.Generator.Cores
			if r.Target != nil {
				h.OtherCores -= r.Target.Cores
			}
			r.Host = &h
		}
	}
	return r
}

func avg(xs []int) int {
	sum := 0
	for _, x := range xs {
		sum += x
	}
	return sum / max(len(xs), 1)
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// print writes the human-readable report, each line prefixed by indent.
func (r *Result) print(w io.Writer, indent string) {
	p := func(format string, a ...any) { fmt.Fprintf(w, indent+format+"\n", a...) }
	p("measured   %.2f s (after %.3g s warmup); %d B/request, %d B/event", r.MeasureSec, r.WarmupSec, r.BodyBytes, r.EventBytes)
	if r.EventBytes*10 > r.EventSize*11 {
		p("note       --event-size %d is below the smallest event this tool builds (%d B)", r.EventSize, r.EventBytes)
	}
	p("throughput %s events/s   %s requests/s   %.1f MB/s   (%d events, %d requests ok)",
		thousands(r.EventsPerSec), thousands(r.ReqPerSec), r.MBPerSec, r.Events, r.OKRequests)
	if len(r.Errors) == 0 {
		p("errors     none")
	} else {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
			parts = append(parts, fmt.Sprintf("%s: %d", k, r.Errors[k]))
		}
		p("errors     %s (first: %s)", strings.Join(parts, ", "), r.FirstError)
	}
	l := r.Latency
	p("latency    p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s)",
		msStr(l.P50), msStr(l.P90), msStr(l.P99), msStr(l.P999), msStr(l.Max), msStr(l.Mean))
	if s := r.StartLag; s != nil {
		p("schedule   %s req/s target; start lag p50 %s  p99 %s  max %s; %d late starts (> %s)",
			strconv.FormatFloat(r.Rate, 'f', -1, 64), msStr(s.P50), msStr(s.P99), msStr(s.Max), r.LateStarts, msStr(r.LateCutoffM))
	}
	if t := r.Target; t != nil {
		p("target     pid %d: cpu %.2f cores (%.1f s, %.2f µs/event)   rss start %.0f MB  max %.0f MB  end %.0f MB%s",
			t.PID, t.Cores, t.CPUSec, t.CPUPerEventUsec, t.RSSStartMB, t.RSSMaxMB, t.RSSEndMB, errNote(t.Error))
	}
	g := r.Generator
	p("generator  cpu %.2f cores (%.1f s, %.2f µs/event)", g.Cores, g.CPUSec, g.CPUPerEventUsec)
	if h := r.Host; h != nil {
		who := "target and generator"
		if r.Target == nil {
			who = "generator (no --pid)"
		}
		p("host       %.2f of %d cores busy; %.2f cores not accounted to the %s", h.BusyCores, h.CPUs, h.OtherCores, who)
		if r.Target != nil && h.OtherCores > 0.25 {
			p("warning    other work used the machine during this run: its numbers are not clean")
		}
	}
}

func errNote(e string) string {
	if e == "" {
		return ""
	}
	return "  (" + e + ")"
}

func msStr(ms float64) string {
	switch {
	case ms >= 100:
		return fmt.Sprintf("%.0fms", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1fms", ms)
	default:
		return fmt.Sprintf("%.2fms", ms)
	}
}

// thousands formats v rounded to an integer with thin separators: 245,123.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
