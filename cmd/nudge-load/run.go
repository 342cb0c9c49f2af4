package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// loadConfig is one load run: what to send, to whom, how hard, for how long.
type loadConfig struct {
	URL       string
	WriteKey  string
	Mode      string // batch | track
	Batch     int
	EventSize int
	Users     int
	Clients   int
	Duration  time.Duration
	Requests  int64 // when > 0, the run is this many measured requests instead of Duration
	Warmup    time.Duration
	Rate      float64 // requests/s; > 0 is an open-loop run
	Gzip      bool
	PID       int
	Timeout   time.Duration
	Late      time.Duration // open loop: a start later than this after its scheduled time is "late"
	Events    []string      // the events' names, in turn (none: shopEvents)
	RunID     string
}

func (c *loadConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.URL, "url", "http://127.0.0.1:8080", "base URL of the server under test")
	fs.StringVar(&c.WriteKey, "write-key", "nudge-load", "write key (HTTP Basic user, empty password)")
	fs.StringVar(&c.Mode, "mode", "batch", "batch: POST /v1/batch with --batch events; track: POST /v1/track, one event")
	fs.IntVar(&c.Batch, "batch", 100, "events per /v1/batch request")
	fs.IntVar(&c.EventSize, "event-size", 500, "bytes of each event's JSON (padded via a property)")
	fs.IntVar(&c.Users, "users", 100000, "distinct userIds the events are spread over")
	fs.IntVar(&c.Clients, "clients", 64, "concurrent keep-alive clients (closed loop), or worker pool size (open loop; default 256 there)")
	fs.DurationVar(&c.Duration, "duration", 20*time.Second, "measured duration, after the warmup")
	fs.Int64Var(&c.Requests, "requests", 0, "measured requests to send instead of running for --duration")
	fs.DurationVar(&c.Warmup, "warmup", 3*time.Second, "load sent before measuring, excluded from the stats")
	fs.Float64Var(&c.Rate, "rate", 0, "open loop: requests/s on a fixed timetable (0: closed loop)")
	fs.BoolVar(&c.Gzip, "gzip", false, "gzip request bodies (Content-Encoding: gzip); costs generator CPU")
	fs.IntVar(&c.PID, "pid", 0, "target process id: report its CPU time and RSS (from /proc)")
	fs.DurationVar(&c.Timeout, "timeout", 30*time.Second, "per-request timeout")
	fs.DurationVar(&c.Late, "late", 2*time.Millisecond, "open loop: count a request as a late start when it starts this much after its scheduled time")
	fs.Func("events", "comma-separated event names the events take in turn (default: "+strings.Join(shopEvents, ",")+")", func(v string) error {
		c.Events = strings.Split(v, ",")
		for _, name := range c.Events {
			if name == "" || strings.ContainsFunc(name, func(r rune) bool { return r < ' ' || r == '"' || r == '\\' }) {
				return fmt.Errorf("event name %q: want a non-empty name without quotes, backslashes or control characters", name)
			}
		}
		return nil
	})
}

// finish applies the defaults that depend on other flags and validates.
func (c *loadConfig) finish(fs *flag.FlagSet) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if c.Rate > 0 && !set["clients"] {
		c.Clients = 256
	}
	switch {
	case c.Mode != "batch" && c.Mode != "track":
		return fmt.Errorf("--mode must be batch or track, not %q", c.Mode)
	case c.Batch < 1:
		return errors.New("--batch must be at least 1")
	case c.Clients < 1:
		return errors.New("--clients must be at least 1")
	case c.Users < 1:
		return errors.New("--users must be at least 1")
	case c.Rate < 0 || c.Warmup < 0 || c.Requests < 0:
		return errors.New("--rate, --warmup and --requests must not be negative")
	case c.Requests == 0 && c.Duration <= 0:
		return errors.New("--duration must be positive (or give --requests)")
	}
	if _, err := urlEndpoint(c.URL, c.Mode); err != nil {
		return err
	}
	if c.Mode == "track" {
		c.Batch = 1
	}
	return nil
}

func urlEndpoint(base, mode string) (string, error) {
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		return "", fmt.Errorf("--url %q: want http://host:port", base)
	}
	return strings.TrimRight(base, "/") + "/v1/" + mode, nil
}

func newRunID() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ---- The run. ---------------------------------------------------------------

// loadStats is what the workers share while a run goes.
type loadStats struct {
	lat      histogram // completion - scheduled send time, 2xx responses
	lag      histogram // open loop: actual start - scheduled start
	ok       atomic.Int64
	events   atomic.Int64
	failed   atomic.Int64
	late     atomic.Int64
	tickets  atomic.Int64 // closed loop with --requests
	lastDone atomic.Int64 // unix nanos of the last measured completion
	bytes    atomic.Int64 // measured request body bytes sent

	mu       sync.Mutex
	byStatus map[int]int64 // status code (0: transport error) -> count
	firstErr string
}

func (s *loadStats) fail(status int, msg string) {
	s.failed.Add(1)
	s.mu.Lock()
	if s.byStatus == nil {
		s.byStatus = map[int]int64{}
	}
	s.byStatus[status]++
	if s.firstErr == "" {
		s.firstErr = msg
	}
	s.mu.Unlock()
}

// runLoad runs cfg and returns the measured result. It stops early, with what
// it has measured, when ctx ends.
func runLoad(ctx context.Context, cfg loadConfig) (*Result, error) {
	endpoint, err := urlEndpoint(cfg.URL, cfg.Mode)
	if err != nil {
		return nil, err
	}
	if cfg.RunID == "" {
		cfg.RunID = newRunID()
	}
	tmpl := newBodyTemplate(cfg.RunID, cfg.Mode == "track", cfg.Batch, cfg.EventSize, cfg.Users, cfg.Events)

	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0, // no global cap; per host below
		MaxIdleConnsPerHost: cfg.Clients,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		WriteBufferSize:     64 << 10, // a 50 KB batch in one or two writes
		ReadBufferSize:      16 << 10,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: cfg.Timeout}

	// One header map shared read-only by every request.
	hdr := http.Header{
		"Content-Type":  {"application/json"},
		"User-Agent":    {"nudge-load/1"},
		"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(cfg.WriteKey+":"))},
	}
	if cfg.Gzip {
		hdr["Content-Encoding"] = []string{"gzip"}
	}

	st := &loadStats{}
	var counter atomic.Uint64
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	start := time.Now()
	warmEnd := start.Add(cfg.Warmup)
	sampler := startSampler(cfg.PID, warmEnd)

	// Open loop: request k is due at start + k/rate; tickets below warmTickets
	// are warmup, and the run is measuredTickets after them.
	var (
		interval        = 0.0
		warmTickets     int64
		measuredTickets = cfg.Requests
		next            atomic.Int64
	)
	if cfg.Rate > 0 {
		interval = float64(time.Second) / cfg.Rate
		warmTickets = int64(math.Ceil(cfg.Warmup.Seconds() * cfg.Rate))
		if measuredTickets == 0 {
			measuredTickets = int64(math.Round(cfg.Duration.Seconds() * cfg.Rate))
		}
	}
	measureEnd := warmEnd.Add(cfg.Duration)

	var wg sync.WaitGroup
	for i := range cfg.Clients {
		w := &worker{
			client: client, endpoint: endpoint, hdr: hdr, st: st, events: int64(len(tmpl.slots)),
			bm: newBodyMaker(tmpl, &counter, uint64(start.UnixNano())+uint64(i)*0x9e3779b97f4a7c15, cfg.Gzip),
		}
		wg.Go(func() {
			if cfg.Rate > 0 {
				w.openLoop(ctx, start, interval, warmTickets, measuredTickets, &next, cfg.Late)
			} else {
				w.closedLoop(ctx, warmEnd, measureEnd, cfg.Requests)
			}
		})
	}
	wg.Wait()
	sampler.finish()

	return buildResult(cfg, tmpl, st, sampler, warmEnd), nil
}

type worker struct {
	client   *http.Client
	endpoint string
	hdr      http.Header
	st       *loadStats
	bm       *bodyMaker
	events   int64
	timer    *time.Timer
}

func (w *worker) closedLoop(ctx context.Context, warmEnd, measureEnd time.Time, requests int64) {
	for ctx.Err() == nil {
		now := time.Now()
		measured := !now.Before(warmEnd)
		if measured {
			if requests > 0 {
				if w.st.tickets.Add(1) > requests {
					return
				}
			} else if !now.Before(measureEnd) {
				return
			}
		}
		if !w.send(ctx, now, now, measured) {
			select { // no server: do not spin
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

func (w *worker) openLoop(ctx context.Context, start time.Time, interval float64, warmTickets, measuredTickets int64, next *atomic.Int64, late time.Duration) {
	for ctx.Err() == nil {
		k := next.Add(1) - 1
		if k >= warmTickets+measuredTickets {
			return
		}
		due := start.Add(time.Duration(float64(k) * interval))
		if d := time.Until(due); d > 0 {
			if w.timer == nil {
				w.timer = time.NewTimer(d)
			} else {
				w.timer.Reset(d)
			}
			select {
			case <-ctx.Done():
				return
			case <-w.timer.C:
			}
		}
		now := time.Now()
		measured := k >= warmTickets
		if measured {
			lag := now.Sub(due)
			w.st.lag.Record(lag)
			if lag > late {
				w.st.late.Add(1)
			}
		}
		w.send(ctx, due, now, measured)
	}
}

// send makes one request; latency counts from due, the time it was meant to
// start (for the closed loop, when it did start). It reports whether the
// server answered at all.
func (w *worker) send(ctx context.Context, due, now time.Time, measured bool) bool {
	body := w.bm.next(now)
	rb := &reqBody{closed: make(chan struct{})}
	rb.Reset(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.endpoint, rb)
	if err != nil {
		w.st.fail(0, err.Error())
		return false
	}
	req.ContentLength = int64(len(body))
	req.Header = w.hdr
	resp, err := w.client.Do(req)
	status := 0
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		status = resp.StatusCode
	}
	done := time.Now()
	// The transport closes the body when it is done reading it, which can be
	// after Do returns (for instance when the server answers early). Reuse the
	// buffer only then.
	select {
	case <-rb.closed:
	default:
		select {
		case <-rb.closed:
		case <-time.After(time.Second):
			w.bm.fresh()
		}
	}
	if !measured || (ctx.Err() != nil && err != nil) {
		return err == nil // warmup, or cut short by the end of the run
	}
	w.st.bytes.Add(int64(len(body)))
	if err != nil {
		w.st.fail(0, err.Error())
	} else if status < 200 || status > 299 {
		w.st.fail(status, fmt.Sprintf("HTTP %d", status))
	} else {
		w.st.ok.Add(1)
		w.st.events.Add(w.events)
		w.st.lat.Record(done.Sub(due))
	}
	for d := done.UnixNano(); ; {
		cur := w.st.lastDone.Load()
		if d <= cur || w.st.lastDone.CompareAndSwap(cur, d) {
			break
		}
	}
	return err == nil
}

// reqBody is a request body that reports when the transport has closed it.
type reqBody struct {
	bytes.Reader
	closed chan struct{}
	once   sync.Once
}

func (b *reqBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}

// ---- The subcommand. --------------------------------------------------------

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("nudge-load run", flag.ContinueOnError)
	var cfg loadConfig
	cfg.register(fs)
	asJSON := fs.Bool("json", false, "also print the result as one JSON object on stdout (the text report goes to stderr)")
	if err := fs.Parse(args); err != nil {
		return helpOK(err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("run: unexpected argument %q", fs.Arg(0))
	}
	if err := cfg.finish(fs); err != nil {
		return err
	}
	text := stdout
	if *asJSON {
		text = stderr
	}
	fmt.Fprintf(text, "nudge-load run: %s\n", describe(cfg))
	res, err := runLoad(ctx, cfg)
	if err != nil {
		return err
	}
	res.print(text, "")
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return nil
}

func describe(c loadConfig) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", c.URL, c.Mode)
	if c.Mode == "batch" {
		fmt.Fprintf(&b, " x%d", c.Batch)
	}
	fmt.Fprintf(&b, " events of %d B", c.EventSize)
	if c.Gzip {
		b.WriteString(" gzipped")
	}
	if c.Rate > 0 {
		fmt.Fprintf(&b, ", open loop %s req/s with %d workers", strconv.FormatFloat(c.Rate, 'f', -1, 64), c.Clients)
	} else {
		fmt.Fprintf(&b, ", closed loop with %d clients", c.Clients)
	}
	if c.Requests > 0 {
		fmt.Fprintf(&b, ", %d requests", c.Requests)
	} else {
		fmt.Fprintf(&b, ", %s", c.Duration)
	}
	fmt.Fprintf(&b, " after %s warmup", c.Warmup)
	return b.String()
}
