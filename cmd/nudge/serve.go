package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/admin"
	"github.com/nudge-dev/nudge/bus"
	"github.com/nudge-dev/nudge/bus/jetstream"
	"github.com/nudge-dev/nudge/dashboard"
	"github.com/nudge-dev/nudge/dedup"
	"github.com/nudge-dev/nudge/engage"
	"github.com/nudge-dev/nudge/ingest"
	"github.com/nudge-dev/nudge/journey"
	"github.com/nudge-dev/nudge/metrics"
	"github.com/nudge-dev/nudge/profile"
	"github.com/nudge-dev/nudge/profile/pebblestore"
	"github.com/nudge-dev/nudge/shred"
	"github.com/nudge-dev/nudge/tracing"
	"github.com/nudge-dev/nudge/wal"
)

// Files in the data directory.
const (
	lockFile          = "LOCK"
	devKeyFile        = "dev-write-key"
	adminTokenFile    = "admin-token"
	dedupFile         = "dedup.snapshot"
	walDir            = "wal"
	jetstreamDir      = "jetstream"
	keyringFile       = "keys"
	webhookSecretFile = "webhook-secret"
	profilesDir       = "profiles"
)

const dedupSnapshotEvery = 5 * time.Minute

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, err := loadConfig("nudge serve", args, getenv)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	return serve(ctx, cfg, journey.WallClock{}, stdout, stderr)
}

// serve runs nudge with clock as the time of its journeys and of
// receivedAt (tests run it in process on a virtual clock).
func serve(ctx context.Context, cfg Config, clock journey.TimeSource, stdout, stderr io.Writer) error {
	logger, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	stopTracing, err := tracing.Setup(ctx)
	if err != nil {
		return fmt.Errorf("tracing (OTEL_* environment): %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stopTracing(sctx); err != nil {
			logger.Warn("tracing: spans not exported at shutdown", "err", err)
		}
	}()
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	unlock, err := lockDataDir(cfg.Data)
	if err != nil {
		return err
	}
	defer unlock()
	if err := ensureSecrets(&cfg, stdout); err != nil {
		return err
	}
	sources, _ := cfg.Sources()

	keys, err := shred.Open(filepath.Join(cfg.Data, keyringFile))
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	defer keys.Close()

	// The event log first: recovery replays the WAL into it.
	log, err := jetstream.Open(ctx, jetstream.Config{
		URL:        cfg.NATS,
		Stream:     cfg.NATSStream,
		Subject:    cfg.streamSubject(),
		Dir:        filepath.Join(cfg.Data, jetstreamDir),
		Partitions: cfg.Partitions,
		Logger:     logger.With("component", "bus"),
	})
	if err != nil {
		return fmt.Errorf("event log: %w", err)
	}
	defer log.Close()
	w, err := wal.Open(filepath.Join(cfg.Data, walDir), wal.Options{NoSync: cfg.Durability == "none"})
	if err != nil {
		return fmt.Errorf("write-ahead log: %w", err)
	}
	defer w.Close()
	fwd := ingest.NewForwarder(w, log, keys, logger.With("component", "forwarder"))
	if err := fwd.Recover(ctx); err != nil {
		return err
	}
	if err := fwd.Drain(ctx); err != nil {
		return fmt.Errorf("replay write-ahead log: %w", err)
	}
	ix := dedup.New(cfg.DedupWindow, cfg.DedupMax)
	if err := rebuildDedup(ctx, ix, log, filepath.Join(cfg.Data, dedupFile), cfg.DedupWindow); err != nil {
		return err
	}

	store, err := pebblestore.Open(filepath.Join(cfg.Data, profilesDir), pebblestore.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	mx := metrics.New(logger.With("component", "metrics"))
	profiles := profile.NewEngine(profile.Config{Partitions: cfg.Partitions, IdentityTraits: cfg.IdentityTraits,
		Delay: mx.ProfileDelay(), Now: clock.Now},
		store, keys, log, logger.With("component", "profiles"))

	js, err := loadJourneys(cfg)
	if err != nil {
		return err
	}
	chans, err := channels(cfg, logger.With("component", "channels"))
	if err != nil {
		return err
	}
	tracking := ingest.NewHandler(ingest.Config{Sources: sources, Limits: ingest.DefaultLimits(), Partitions: cfg.Partitions, Keys: keys, Metrics: mx.Ingest},
		w, ix, clock.Now, logger.With("component", "ingest"))
	loop, webhooks, err := newFeedback(cfg, tracking, profiles, keys, clock.Now, logger.With("component", "feedback"))
	if err != nil {
		return err
	}
	caps, _ := cfg.Channels.caps()
	lanes, _ := cfg.Channels.lanes()
	journeys, err := journey.NewRuntime(journey.Config{
		Engine: profiles, Store: store, Keys: keys, Logger: logger.With("component", "journeys"), Clock: clock,
		TimeToTrigger: mx.TimeToTrigger(), Delivery: mx.Deliveries(), TimerFired: mx.TimerLateness(), Caps: caps, Lanes: lanes, Links: loop,
	}, js, chans)
	if err != nil {
		return fmt.Errorf("journeys: %w", err)
	}
	profiles.SetReactor(journeys)
	defs, err := openDefinitions(ctx, cfg, journeys)
	if err != nil {
		return err
	}

	// Metrics and readiness. The profile consumer is ready once it has
	// applied what the log holds now.
	startSeq, err := log.LastSeq(ctx)
	if err != nil {
		return fmt.Errorf("event log: %w", err)
	}
	profilesConsumer := metrics.Consumer{Name: "profiles", Applied: func() uint64 { return profiles.Stats().AppliedSeq }}
	mx.WAL(w.Stats)
	mx.ForwardLag(fwd.Lag)
	mx.Profiles(profiles.Stats)
	mx.Consumer(log, profilesConsumer)
	var ready metrics.Readiness
	ready.Add("event_log", metrics.EventLogCheck(log))
	ready.Add("wal", metrics.WALCheck(w.Stats))
	ready.Add("forwarder", metrics.ForwarderCheck(fwd.Err))
	ready.Add("profiles", metrics.CaughtUpCheck(log, profilesConsumer, startSeq))

	mx.DeadLetters(journeys.DeadLetterCount)
	mx.Journeys(journeys.Totals, journeys.TimersPending)

	mux := http.NewServeMux()
	tracking.Register(mux)
	loop.Register(mux, webhooks, engage.Config{Logger: logger.With("component", "links")})
	adminAPI := admin.New(admin.Config{
		Token: cfg.AdminToken, Log: log, Forwarded: fwd, Keys: keys, Profiles: profiles, Erasures: fwd, Journeys: journeys,
		Definitions: defs,
	}, logger.With("component", "admin"))
	adminAPI.Register(mux)
	// Open to anyone who can reach the listen address, as Prometheus
	// scrapers expect: they hold no secret and no personal data.
	mux.Handle("GET /metrics", mx.Handler())
	mux.Handle("GET /healthz", metrics.Healthz)
	mux.Handle("GET /readyz", &ready)
	mux.Handle("/", dashboard.Handler()) // the fallback: every other route is more specific

	ln, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(adminAPI.CloseStreams)
	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	fwdDone := make(chan error, 1)
	go func() { fwdDone <- fwd.Run(runCtx) }()
	profilesDone := make(chan error, 1)
	go func() { profilesDone <- profiles.Run(runCtx) }()
	journeysDone := make(chan error, 1)
	go func() { journeysDone <- journeys.Run(runCtx) }()
	snapDone := make(chan struct{})
	go func() {
		defer close(snapDone)
		snapshotDedup(runCtx, ix, log, filepath.Join(cfg.Data, dedupFile), logger)
	}()
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(ln) }()
	if cfg.Debug != "" {
		stopDebug, err := serveDebug(cfg.Debug, logger)
		if err != nil {
			return err
		}
		defer stopDebug()
	}
	logger.Info("nudge started", "version", buildVersion(), "http", ln.Addr().String(), "journeys", len(js),
		"data", cfg.Data, "event_log", logKind(cfg), "partitions", cfg.Partitions, "durability", cfg.Durability)
	fmt.Fprintf(stdout, "nudge listening on http://%s\n", ln.Addr())

	select {
	case <-ctx.Done():
	case err := <-srvDone:
		return fmt.Errorf("http: %w", err)
	case err := <-fwdDone:
		return fmt.Errorf("forwarder: %w", err)
	case err := <-profilesDone:
		return fmt.Errorf("profiles: %w", err)
	case err := <-journeysDone:
		return fmt.Errorf("journeys: %w", err)
	}

	// Shutdown in order: stop intake, forward what was acknowledged, make it
	// durable, save the dedup index.
	logger.Info("shutting down", "timeout", cfg.Shutdown)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Shutdown)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("http shutdown", "err", err)
	}
	stopRun()
	<-fwdDone
	<-snapDone
	// Journeys commit through the profile engine: they stop first.
	if err := <-journeysDone; err != nil {
		logger.Warn("journeys stopped with an error", "err", err)
	}
	if err := <-profilesDone; err != nil {
		logger.Warn("profiles stopped with an error", "err", err)
	}
	if err := fwd.Drain(sctx); err != nil {
		return fmt.Errorf("shutdown: forward acknowledged events: %w", err)
	}
	if err := saveDedup(sctx, ix, log, filepath.Join(cfg.Data, dedupFile)); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// serveDebug serves Go's profiler on its own listener, so that it is
// never reachable where the API is: a profile shows memory and timing
// that an admin token does not need to expose.
func serveDebug(addr string, logger *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug_addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Warn("debug listener stopped", "err", err)
		}
	}()
	logger.Info("profiler listening", "debug_addr", ln.Addr().String())
	return func() { srv.Close() }, nil
}

func logKind(cfg Config) string {
	if cfg.NATS == "" {
		return "embedded"
	}
	return "external"
}

func newLogger(cfg Config, w io.Writer) (*slog.Logger, error) {
	level, err := parseLevel(cfg.LogLevel)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("log_level: %q is not debug, info, warn or error", s)
	}
	return l, nil
}

// lockDataDir keeps a second nudge from opening the same data directory.
func lockDataDir(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data directory %s is in use by another nudge (%w)", dir, err)
	}
	return func() { f.Close() }, nil
}

// ensureSecrets gives a nudge started without a write key or admin token
// development ones, made once, kept in the data directory and printed at
// start-up.
func ensureSecrets(cfg *Config, stdout io.Writer) error {
	if len(cfg.WriteKeys) == 0 {
		key, err := readOrMakeSecret(filepath.Join(cfg.Data, devKeyFile))
		if err != nil {
			return err
		}
		cfg.WriteKeys = []string{"dev=" + key}
		fmt.Fprintf(stdout, "development write key: %s (kept in %s)\n", key, filepath.Join(cfg.Data, devKeyFile))
	}
	if cfg.AdminToken == "" {
		token, err := readOrMakeSecret(filepath.Join(cfg.Data, adminTokenFile))
		if err != nil {
			return err
		}
		cfg.AdminToken = token
		fmt.Fprintf(stdout, "development admin token: %s (kept in %s)\n", token, filepath.Join(cfg.Data, adminTokenFile))
	}
	return nil
}

func readOrMakeSecret(path string) (string, error) { return readOrMake(path, 1) }

// readOrMake reads the secret kept in path, or makes one of n random texts
// (130 bits each) and keeps it there.
func readOrMake(path string, n int) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return s, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	var s string
	for range n {
		s += rand.Text()
	}
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", err
	}
	return s, nil
}

// rebuildDedup loads the last dedup snapshot and adds the events the log
// stored after it, so a retry after a restart is still recognised.
func rebuildDedup(ctx context.Context, ix *dedup.Index, log bus.Log, path string, window time.Duration) error {
	now := time.Now()
	mark, err := ix.Load(path, now)
	if err != nil {
		return err
	}
	opts := bus.ReadOptions{FromSeq: mark + 1}
	if mark == 0 {
		opts = bus.ReadOptions{FromTime: now.Add(-window)}
	}
	err = log.Read(ctx, opts, func(_ context.Context, m bus.Message) error {
		events, err := nudge.DecodeEvents(m.Payload)
		if err != nil {
			return fmt.Errorf("log message %d: %w", m.Seq, err)
		}
		for _, e := range events {
			ix.Add(dedup.KeyOf(e.Source, e.MessageID), e.ReceivedAt, now)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("rebuild dedup index: %w", err)
	}
	return nil
}

// saveDedup snapshots the index. The mark is the log's last sequence read
// before the snapshot: every event accepted before it is in the snapshot,
// and every event accepted after it is stored after that sequence.
func saveDedup(ctx context.Context, ix *dedup.Index, log bus.Log, path string) error {
	mark, err := log.LastSeq(ctx)
	if err != nil {
		return fmt.Errorf("dedup snapshot: %w", err)
	}
	return ix.Save(path, mark)
}

func snapshotDedup(ctx context.Context, ix *dedup.Index, log bus.Log, path string, logger *slog.Logger) {
	t := time.NewTicker(dedupSnapshotEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := saveDedup(ctx, ix, log, path); err != nil {
				logger.Warn("dedup snapshot failed", "err", err)
			}
		}
	}
}
