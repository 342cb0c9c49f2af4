// Package jetstream implements bus.Log on NATS JetStream, either on a server
// embedded in the process (Config.URL empty) or on an external server or
// cluster.
//
// The log is one stream with file storage. Partition N is the subject
// "<prefix>.N"; the partition count is fixed when the stream is created and
// kept in the stream's metadata (and, for servers older than 2.10 that drop
// metadata, in its description).
//
// Append publishes asynchronously with the message id "<partition>-<pos>", so
// JetStream's duplicate window (DuplicateWindow) drops a batch resent within it.
// Read uses an ordered (ephemeral) consumer. Subscribe uses one durable pull
// consumer per partition, named "<group>-p<N>", with at most one
// unacknowledged message each, so a partition is strictly in order even across
// redeliveries.
package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nudge-dev/nudge/bus"
)

// Defaults for Config.
const (
	DefaultStream     = "NUDGE_EVENTS"
	DefaultSubject    = "nudge.events"
	DefaultPartitions = 16
)

const (
	// DuplicateWindow is how long the stream remembers message ids: a batch
	// resent within it (same partition and ProducerPos) is not stored twice.
	// It only has to cover a producer retrying a failed Append (after a crash
	// the forwarder asks LastProducerPos instead), and every id in it costs
	// server memory: at 8,000 messages/s, 2 minutes held ~140 MB.
	DuplicateWindow = 30 * time.Second

	// ProducerPosHeader carries Batch.ProducerPos on every stored message.
	ProducerPosHeader = "Nudge-Producer-Pos"

	metaPartitions = "nudge.partitions"
	descFormat     = "nudge event log: %d partitions"

	// maxPendingAcks bounds the publishes in flight on the connection, shared
	// by all Append calls (the async publish window).
	maxPendingAcks = 4096
	pubAckTimeout  = 30 * time.Second

	// Subscribe's retry backoff for a failing handler.
	defaultRetryMin = 100 * time.Millisecond
	defaultRetryMax = 5 * time.Second

	// subAckWait is the durable consumers' AckWait: how long a message
	// delivered to a subscriber that died waits for redelivery. Subscribe
	// tells the server every subAckWait/3 that a message is still in
	// progress while its handler runs or is retried.
	subAckWait = 10 * time.Second

	// readIdle is how long a Read without Follow waits for a message before it
	// asks the server whether anything is left to deliver.
	readIdle = 2 * time.Second
)

// Config configures Open.
type Config struct {
	// URL of an external server or cluster (nats://127.0.0.1:4222); empty
	// starts a server embedded in the process.
	URL string
	// Dir is the embedded server's store directory (JetStream's files live
	// under Dir/jetstream). Required when URL is empty.
	Dir string
	// Stream is the stream name, DefaultStream if empty.
	Stream string
	// Subject is the subject prefix, DefaultSubject if empty: partition N is
	// stored under "<Subject>.N".
	Subject string
	// Partitions is fixed when the stream is created, DefaultPartitions if
	// zero. Opening an existing stream with a different count is an error.
	Partitions int
	// MaxAge is the retention; zero keeps messages forever. A changed MaxAge
	// updates an existing stream.
	MaxAge time.Duration
	// Replicas for an external cluster, 1 if zero. The embedded server always
	// keeps one copy.
	Replicas int
	// Logger receives connection events and the embedded server's warnings
	// and errors (its notices at debug level). Nil uses slog.Default().
	Logger *slog.Logger
}

// Log is a bus.Log on a JetStream stream. It is safe for concurrent use.
type Log struct {
	cfg      Config
	log      *slog.Logger
	srv      *server.Server // embedded only
	storeDir *os.File       // embedded only: for Sync
	nc       *nats.Conn
	js       jetstream.JetStream
	stream   jetstream.Stream

	subjects    []string // per partition
	multiFilter bool     // server takes several filter subjects per consumer (2.10+)

	// pubSlots bounds the publishes in flight across Append calls, so the
	// library's async publish window never fills and stalls.
	pubSlots chan struct{}

	retryMin, retryMax time.Duration // Subscribe's handler retry backoff
	ackWait            time.Duration // Subscribe's consumers' AckWait

	closeOnce sync.Once
	closeErr  error
}

var _ bus.Log = (*Log)(nil)

// Open connects to (or starts) the server and creates the stream, or checks
// an existing one against cfg.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if cfg.Stream == "" {
		cfg.Stream = DefaultStream
	}
	if cfg.Subject == "" {
		cfg.Subject = DefaultSubject
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = DefaultPartitions
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.URL == "" {
		cfg.Replicas = 1
	}
	if err := validate(cfg); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	l := &Log{
		cfg:      cfg,
		log:      logger.With("component", "bus/jetstream", "stream", cfg.Stream),
		pubSlots: make(chan struct{}, maxPendingAcks),
		retryMin: defaultRetryMin,
		retryMax: defaultRetryMax,
		ackWait:  subAckWait,
		subjects: make([]string, cfg.Partitions),
	}
	for p := range l.subjects {
		l.subjects[p] = cfg.Subject + "." + strconv.Itoa(p)
	}

	var err error
	if cfg.URL == "" {
		err = l.startEmbedded(ctx)
	} else {
		err = l.connectExternal()
	}
	if err == nil {
		err = l.setup(ctx)
	}
	if err != nil {
		_ = l.Close()
		return nil, err
	}
	return l, nil
}

func validate(cfg Config) error {
	if cfg.URL == "" && cfg.Dir == "" {
		return errors.New("jetstream: Config.Dir is required for the embedded server")
	}
	if cfg.Partitions < 1 {
		return fmt.Errorf("jetstream: Partitions must be positive, got %d", cfg.Partitions)
	}
	if cfg.Replicas < 1 {
		return fmt.Errorf("jetstream: Replicas must be positive, got %d", cfg.Replicas)
	}
	if cfg.MaxAge < 0 {
		return fmt.Errorf("jetstream: negative MaxAge %v", cfg.MaxAge)
	}
	if strings.ContainsAny(cfg.Stream, " \t\r\n.*>/\\") {
		return fmt.Errorf("jetstream: invalid stream name %q", cfg.Stream)
	}
	for tok := range strings.SplitSeq(cfg.Subject, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n") {
			return fmt.Errorf("jetstream: invalid subject prefix %q", cfg.Subject)
		}
	}
	return nil
}

func (l *Log) startEmbedded(ctx context.Context) error {
	dir, err := filepath.Abs(l.cfg.Dir)
	if err != nil {
		return fmt.Errorf("jetstream: store dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("jetstream: store dir: %w", err)
	}
	l.storeDir, err = os.Open(dir)
	if err != nil {
		return fmt.Errorf("jetstream: store dir: %w", err)
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "nudge-embedded",
		JetStream:  true,
		StoreDir:   dir,
		DontListen: true,
		NoSigs:     true,
	})
	if err != nil {
		return fmt.Errorf("jetstream: embedded server: %w", err)
	}
	srv.SetLoggerV2(serverLogger{l.log.With("component", "nats-server")}, false, false, false)
	l.srv = srv
	srv.Start()
	wait := 30 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		wait = time.Until(dl)
	}
	if !srv.ReadyForConnections(wait) {
		return fmt.Errorf("jetstream: embedded server in %s not ready after %v", dir, wait)
	}
	l.nc, err = nats.Connect("", append(l.connOptions(), nats.InProcessServer(srv))...)
	if err != nil {
		return fmt.Errorf("jetstream: connect to embedded server: %w", err)
	}
	return nil
}

func (l *Log) connectExternal() error {
	var err error
	l.nc, err = nats.Connect(l.cfg.URL, append(l.connOptions(),
		nats.Timeout(5*time.Second),
		nats.ReconnectWait(250*time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
	)...)
	if err != nil {
		return fmt.Errorf("jetstream: connect to %s: %w", l.cfg.URL, err)
	}
	return nil
}

func (l *Log) connOptions() []nats.Option {
	return []nats.Option{
		nats.Name("nudge bus " + l.cfg.Stream),
		nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				l.log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			l.log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			l.log.Warn("nats async error", "subject", subject, "err", err)
		}),
	}
}

// setup is the same for the embedded and the external server.
func (l *Log) setup(ctx context.Context) error {
	var err error
	l.js, err = jetstream.New(l.nc,
		jetstream.WithPublishAsyncMaxPending(maxPendingAcks),
		jetstream.WithPublishAsyncTimeout(pubAckTimeout),
	)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	l.multiFilter = versionAtLeast(l.nc.ConnectedServerVersion(), 2, 10)
	return l.ensureStream(ctx)
}

func (l *Log) wantStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        l.cfg.Stream,
		Description: fmt.Sprintf(descFormat, l.cfg.Partitions),
		Subjects:    []string{l.cfg.Subject + ".*"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Storage:     jetstream.FileStorage,
		Replicas:    l.cfg.Replicas,
		MaxAge:      l.cfg.MaxAge,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		MaxMsgSize:  -1,
		Duplicates:  DuplicateWindow,
		// Get reads a message by the direct API: the raw message instead
		// of a JSON answer holding it in base64 (a profile read fetches
		// its recent events this way). Replicas would answer too, possibly
		// before they hold a message: only with one.
		AllowDirect: l.cfg.Replicas <= 1,
		Metadata:    map[string]string{metaPartitions: strconv.Itoa(l.cfg.Partitions)},
	}
}

// ensureStream creates the stream, or checks an existing one (partition count
// and subjects) and brings its retention settings up to date.
func (l *Log) ensureStream(ctx context.Context) error {
	want := l.wantStreamConfig()
	for range 3 {
		s, err := l.js.Stream(ctx, want.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			s, err = l.js.CreateStream(ctx, want)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				continue // created concurrently: check it
			}
			if err != nil {
				return fmt.Errorf("jetstream: create stream %s: %w", want.Name, err)
			}
			l.stream = s
			return nil
		}
		if err != nil {
			return fmt.Errorf("jetstream: stream %s: %w", want.Name, err)
		}
		have := s.CachedInfo().Config
		n, err := partitionsOf(have)
		if err != nil {
			return fmt.Errorf("jetstream: stream %s: %w", want.Name, err)
		}
		if n != l.cfg.Partitions {
			return fmt.Errorf("jetstream: stream %s was created with %d partitions, config asks for %d (the count is fixed at creation)",
				want.Name, n, l.cfg.Partitions)
		}
		if !slices.Equal(have.Subjects, want.Subjects) {
			return fmt.Errorf("jetstream: stream %s has subjects %v, config asks for %v", want.Name, have.Subjects, want.Subjects)
		}
		if have.MaxAge != want.MaxAge || have.Duplicates != want.Duplicates || have.Replicas != want.Replicas ||
			have.AllowDirect != want.AllowDirect {
			upd := have
			upd.MaxAge, upd.Duplicates, upd.Replicas = want.MaxAge, want.Duplicates, want.Replicas
			upd.AllowDirect = want.AllowDirect
			if s, err = l.js.UpdateStream(ctx, upd); err != nil {
				return fmt.Errorf("jetstream: update stream %s: %w", want.Name, err)
			}
		}
		l.stream = s
		return nil
	}
	return fmt.Errorf("jetstream: stream %s: created and deleted concurrently", want.Name)
}

// partitionsOf reads the partition count from the stream's metadata, or from
// its description on servers that drop metadata (before 2.10).
func partitionsOf(cfg jetstream.StreamConfig) (int, error) {
	if v, ok := cfg.Metadata[metaPartitions]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, fmt.Errorf("bad %s metadata %q", metaPartitions, v)
		}
		return n, nil
	}
	var n int
	if _, err := fmt.Sscanf(cfg.Description, descFormat, &n); err != nil || n < 1 {
		return 0, fmt.Errorf("not a nudge log: no %s metadata and description %q", metaPartitions, cfg.Description)
	}
	return n, nil
}

// versionAtLeast reports whether a server version "X.Y.Z[-...]" is >= major.minor.
func versionAtLeast(v string, major, minor int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// Partitions is the fixed number of partitions.
func (l *Log) Partitions() int { return l.cfg.Partitions }

// Conn is the log's NATS connection (in-process for the embedded server),
// which other components may share. It is closed by Close.
func (l *Log) Conn() *nats.Conn { return l.nc }

// Sync makes every acknowledged batch survive a power cut. The embedded
// server's file store writes each message to its file before acknowledging
// it, but fsyncs only every two minutes, so Sync flushes the store's file
// system (syncfs on Linux). On an external server Sync returns nil: a
// cluster's durability is its replication (and its own sync settings).
func (l *Log) Sync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if l.storeDir == nil {
		return nil
	}
	if err := syncDir(l.storeDir); err != nil {
		return fmt.Errorf("jetstream: sync %s: %w", l.storeDir.Name(), err)
	}
	return nil
}

// Close closes the connection and shuts the embedded server down, after
// which its files are synced. It does not wait for running Read or Subscribe
// calls.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		if l.nc != nil {
			l.nc.Close()
		}
		if l.srv != nil {
			l.srv.Shutdown()
			l.srv.WaitForShutdown()
		}
		if l.storeDir != nil {
			if err := syncDir(l.storeDir); err != nil {
				l.closeErr = fmt.Errorf("jetstream: sync %s: %w", l.storeDir.Name(), err)
			}
			_ = l.storeDir.Close()
		}
	})
	return l.closeErr
}

// partitionSet validates ps and returns them sorted without duplicates; nil or
// empty means all partitions.
func (l *Log) partitionSet(ps []int) ([]int, error) {
	if len(ps) == 0 {
		all := make([]int, l.cfg.Partitions)
		for i := range all {
			all[i] = i
		}
		return all, nil
	}
	out := slices.Clone(ps)
	for _, p := range out {
		if p < 0 || p >= l.cfg.Partitions {
			return nil, fmt.Errorf("jetstream: partition %d out of range [0,%d)", p, l.cfg.Partitions)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// partitionOf parses the partition from a message subject.
func (l *Log) partitionOf(subject string) (int, bool) {
	rest, ok := strings.CutPrefix(subject, l.cfg.Subject)
	if !ok || len(rest) < 2 || rest[0] != '.' {
		return 0, false
	}
	p, err := strconv.Atoi(rest[1:])
	if err != nil || p < 0 || p >= l.cfg.Partitions {
		return 0, false
	}
	return p, true
}

func producerPos(h nats.Header) uint64 {
	v := h.Get(ProducerPosHeader)
	if v == "" {
		return 0
	}
	pos, _ := strconv.ParseUint(v, 10, 64)
	return pos
}

// serverLogger routes the embedded server's log to slog: notices at debug
// level (they are chatty at startup), warnings and errors as such.
type serverLogger struct{ l *slog.Logger }

func (s serverLogger) log(level slog.Level, format string, v []any) {
	if s.l.Enabled(context.Background(), level) {
		s.l.Log(context.Background(), level, fmt.Sprintf(format, v...))
	}
}

func (s serverLogger) Noticef(format string, v ...any) { s.log(slog.LevelDebug, format, v) }
func (s serverLogger) Warnf(format string, v ...any)   { s.log(slog.LevelWarn, format, v) }
func (s serverLogger) Fatalf(format string, v ...any)  { s.log(slog.LevelError, format, v) }
func (s serverLogger) Errorf(format string, v ...any)  { s.log(slog.LevelError, format, v) }
func (s serverLogger) Debugf(format string, v ...any)  { s.log(slog.LevelDebug, format, v) }
func (s serverLogger) Tracef(format string, v ...any)  { s.log(slog.LevelDebug-4, format, v) }
