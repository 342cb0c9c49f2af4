package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// receiveMain runs "nudge-load receive": a webhook receiver that measures
// time to trigger end to end. The journey's webhook body carries the
// triggering event's timestamp, which the load generator sets to the time
// it sent the request ({"ts": "{{ event.timestamp }}"}), so the receiver's
// clock minus it is the time from the client's send to the webhook's
// arrival. Client and receiver share the machine's clock.
func receiveMain(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("nudge-load receive", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:18384", "listen address")
	duration := fs.Duration("duration", 0, "stop after this long (0: on SIGINT or SIGTERM)")
	skip := fs.Duration("warmup", 0, "do not count webhooks received in the first this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	var h histogram
	started := time.Now()
	var bad, skipped atomic.Int64 // handlers run concurrently
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		var body struct{ TS time.Time }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.TS.IsZero() {
			bad.Add(1)
		} else if now.Sub(started) < *skip {
			skipped.Add(1)
		} else {
			h.Record(now.Sub(body.TS))
		}
		w.WriteHeader(http.StatusNoContent)
	})}
	fmt.Fprintf(stdout, "receiving on http://%s\n", ln.Addr())
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx) // the handlers running finish before the report
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	fmt.Fprintf(stdout, "webhooks %d (warm-up %d, unreadable %d)\n", h.Count(), skipped.Load(), bad.Load())
	fmt.Fprintf(stdout, "time to trigger (client send -> webhook arrival): p50 %s  p99 %s  p99.9 %s  max %s\n",
		h.Percentile(50), h.Percentile(99), h.Percentile(99.9), h.Max())
	return nil
}
