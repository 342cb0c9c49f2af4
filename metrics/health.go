package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/nudge-dev/nudge/wal"
)

// Healthz answers GET /healthz: 200 "ok" while the process serves HTTP.
// It checks nothing else, so that an orchestrator restarts nudge only when
// it is wedged, never because a dependency is down (that is /readyz).
var Healthz http.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok\n")
})

// A Check tells whether one part of nudge is ready: nil when it is, or an
// error whose message says why not, for people to read ("catching up: 1200
// messages behind"). It returns within LagTimeout: ctx carries that
// deadline. Checks run concurrently, and concurrently with themselves when
// requests overlap.
type Check func(ctx context.Context) error

// Readiness answers GET /readyz: 200 when every check passes, 503
// otherwise, with the body
//
//	{"ready":false,"checks":{"event_log":"ok","profiles":"catching up: 1200 messages behind"}}
//
// Add every check before serving.
type Readiness struct {
	names  []string
	checks []Check
}

// Add adds a named check ("event_log"); the name is its key in the body.
func (r *Readiness) Add(name string, c Check) {
	r.names = append(r.names, name)
	r.checks = append(r.checks, c)
}

// ServeHTTP runs every check at once and answers with their results.
func (r *Readiness) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	ctx, cancel := context.WithTimeout(req.Context(), LagTimeout)
	defer cancel()
	results := make([]error, len(r.checks))
	var wg sync.WaitGroup
	for i, c := range r.checks {
		wg.Go(func() { results[i] = c(ctx) })
	}
	wg.Wait()
	body := struct {
		Ready  bool              `json:"ready"`
		Checks map[string]string `json:"checks"`
	}{Ready: true, Checks: make(map[string]string, len(r.checks))}
	for i, err := range results {
		body.Checks[r.names[i]] = "ok"
		if err != nil {
			body.Ready = false
			body.Checks[r.names[i]] = err.Error()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !body.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(body)
}

// EventLogCheck passes when the event log tells its last sequence within
// the check's deadline.
func EventLogCheck(log EventLog) Check {
	return func(ctx context.Context) error {
		if _, err := log.LastSeq(ctx); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("not answering within %s", LagTimeout)
			}
			return fmt.Errorf("not answering: %w", err)
		}
		return nil
	}
}

// WALCheck passes while the write-ahead log is open. stats is
// wal.WAL.Stats. Failed appends (a full disk) do not make nudge unready:
// a node out of its load balancer would get no request to prove that it
// recovered; nudge_wal_failed_rounds_total tells them.
func WALCheck(stats func() wal.Stats) Check {
	return func(context.Context) error {
		if stats().Closed {
			return errors.New("closed")
		}
		return nil
	}
}

// ForwarderCheck passes unless the forwarder's last round failed. err is
// ingest.Forwarder.Err. The forwarder retries by itself, so the check
// passes again once the event log takes appends.
func ForwarderCheck(err func() error) Check {
	return func(context.Context) error {
		if e := err(); e != nil {
			return fmt.Errorf("failing, retrying: %w", e)
		}
		return nil
	}
}

// CaughtUpCheck passes once the consumer has applied the log up to target,
// the log's last sequence when nudge started; from then on it passes for
// good (its lag is a metric: nudge_consumer_lag_messages). Until then it
// says how far behind the consumer is.
func CaughtUpCheck(log EventLog, c Consumer, target uint64) Check {
	var done atomic.Bool
	return func(ctx context.Context) error {
		if done.Load() {
			return nil
		}
		applied := c.Applied()
		if applied >= target {
			done.Store(true)
			return nil
		}
		last, err := log.LastSeq(ctx)
		if err != nil {
			return fmt.Errorf("catching up: applied %d of %d messages", applied, target)
		}
		return fmt.Errorf("catching up: %d messages behind", last-min(applied, last))
	}
}
