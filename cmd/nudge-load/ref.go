package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// ---- The reference server's core: decode, append, group-commit. ----------

// refEvent is one Segment call: the common fields decoded, the free-form
// objects kept raw.
type refEvent struct {
	Type        string          `json:"type"`
	Event       string          `json:"event"`
	UserID      string          `json:"userId"`
	AnonymousID string          `json:"anonymousId"`
	MessageID   string          `json:"messageId"`
	Timestamp   string          `json:"timestamp"`
	Properties  json.RawMessage `json:"properties"`
	Context     json.RawMessage `json:"context"`
}

type refServer struct {
	f              *os.File
	writeKey       string       // when set, the Basic auth user must be it
	sync           func() error // fdatasync(f); a seam for tests
	queue          chan pending
	queued         func() // test hook: a request has joined the queue
	rounds, writes atomic.Int64
}

type pending struct {
	data []byte
	done chan error
}

func (s *refServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	track := r.URL.Path == "/v1/track"
	if r.Method != http.MethodPost || !track && r.URL.Path != "/v1/batch" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if user, _, ok := r.BasicAuth(); !ok || s.writeKey != "" && user != s.writeKey {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	buf := bufPool.Get().(*bytes.Buffer)
	defer func() { buf.Reset(); bufPool.Put(buf) }()
	var body io.Reader = http.MaxBytesReader(w, r.Body, 16<<20)
	var err error
	if r.Header.Get("Content-Encoding") == "gzip" {
		body, err = gzip.NewReader(body)
	}
	if err == nil {
		_, err = buf.ReadFrom(io.LimitReader(body, 64<<20))
	}
	var req struct{ Batch []refEvent }
	if err == nil && track {
		req.Batch = make([]refEvent, 1)
		err = json.Unmarshal(buf.Bytes(), &req.Batch[0])
	} else if err == nil {
		err = json.Unmarshal(buf.Bytes(), &req)
	}
	for _, e := range req.Batch {
		if e.Type == "" || e.MessageID == "" || e.UserID == "" && e.AnonymousID == "" {
			err = errors.New("an event lacks type, messageId, or userId/anonymousId")
		}
	}
	if err != nil || len(req.Batch) == 0 {
		http.Error(w, fmt.Sprint("bad request: ", err), http.StatusBadRequest)
		return
	}
	p := pending{buf.Bytes(), make(chan error, 1)}
	s.queue <- p
	if s.queued != nil {
		s.queued()
	}
	if err := <-p.done; err != nil { // answer only once the data is durable
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"success":true}`)
}

// commitLoop is the one writer: it takes everything queued, appends it to
// the file in one write, fdatasyncs once, then releases that round's waiters.
func (s *refServer) commitLoop() {
	var buf []byte
	var round []pending
	for p := range s.queue {
		round, buf = append(round[:0], p), buf[:0]
		for len(s.queue) > 0 {
			round = append(round, <-s.queue)
		}
		for _, p := range round {
			buf = append(append(buf, p.data...), '\n')
		}
		_, err := s.f.Write(buf)
		if err == nil {
			err = s.sync()
		}
		// Counted before the waiters go, so that whoever a round answered
		// sees it counted.
		s.rounds.Add(1)
		s.writes.Add(int64(len(round)))
		for _, p := range round {
			p.done <- err
		}
	}
}

// ---- Plumbing. --------------------------------------------------------------

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// newRefServer opens (appends to) path; start runs the commit loop.
func newRefServer(path, writeKey string) (*refServer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	s := &refServer{f: f, writeKey: writeKey, queue: make(chan pending, 4096)}
	s.sync = func() error { return fdatasync(f) }
	return s, nil
}

func (s *refServer) start() { go s.commitLoop() }

// serveRef listens on addr and serves s until ctx ends. ready is called with
// the listening address once the socket is bound.
func serveRef(ctx context.Context, s *refServer, addr string, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	if ready != nil {
		ready(ln.Addr())
	}
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func refMain(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("nudge-load ref", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (port 0 picks a free port)")
	file := fs.String("file", "", "append request bodies to this file (required)")
	key := fs.String("write-key", "", "require this write key as the Basic auth user (default: any)")
	procs := fs.Int("gomaxprocs", 0, "GOMAXPROCS for the server; 0: the default plus one, unless $GOMAXPROCS is set")
	if err := fs.Parse(args); err != nil {
		return helpOK(err)
	}
	// A goroutine blocked in fdatasync keeps its P until sysmon retakes it,
	// which can take up to 10 ms when sysmon has backed off; with GOMAXPROCS
	// = cores that idles a core for much of each sync (measured: 1.64 of 2
	// cores busy, vs 1.85 with one spare P). The ceiling gets the spare P.
	switch {
	case *procs > 0:
		runtime.GOMAXPROCS(*procs)
	case os.Getenv("GOMAXPROCS") == "":
		runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 1)
	}
	if *file == "" {
		return errors.New("ref: --file is required")
	}
	if onTmpfs(*file) {
		fmt.Fprintf(os.Stderr, "nudge-load ref: warning: %s is on tmpfs, fdatasync is free there; the reference is not a durable ceiling\n", *file)
	}
	s, err := newRefServer(*file, *key)
	if err != nil {
		return err
	}
	defer s.f.Close()
	s.start()
	err = serveRef(ctx, s, *addr, func(a net.Addr) {
		fmt.Fprintf(os.Stderr, "nudge-load ref: GOMAXPROCS %d, file %s\n", runtime.GOMAXPROCS(0), *file)
		fmt.Fprintf(stdout, "listening on http://%s\n", a)
	})
	if n := s.rounds.Load(); n > 0 {
		fmt.Fprintf(os.Stderr, "nudge-load ref: %d requests in %d fdatasync rounds (%.1f per round)\n", s.writes.Load(), n, float64(s.writes.Load())/float64(n))
	}
	return err
}

func helpOK(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}
