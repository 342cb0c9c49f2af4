package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// probeMain reads profiles at a fixed rate while other load runs, and
// reports the latency of GET /v1/profiles/{id}: the user ids are those
// "nudge-load run --users N" sends.
func probeMain(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("nudge-load probe", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:8080", "base URL of nudge")
	token := fs.String("admin-token", "", "admin token (required)")
	users := fs.Int("users", 100000, "the --users of the run that sent the events")
	rate := fs.Float64("rate", 100, "profile reads per second")
	duration := fs.Duration("duration", 30*time.Second, "how long to probe")
	wait := fs.String("wait", "", "the reads' wait parameter: how long each waits for the profiles to catch up (empty: nudge's default, 5s; 0: not at all)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *token == "" || *users < 1 || *rate <= 0 {
		return errors.New("probe: --admin-token, --users >= 1 and --rate > 0 are required")
	}
	width := len(strconv.Itoa(*users - 1))
	var h histogram
	var mu sync.Mutex
	codes := map[int]int{}
	behind := 0 // answers that said Nudge-Profiles-Behind
	query := ""
	if *wait != "" {
		query = "?wait=" + *wait
	}
	client := &http.Client{Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	tick := time.NewTicker(time.Duration(float64(time.Second) / *rate))
	defer tick.Stop()
	var wg sync.WaitGroup
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			l := summarize(&h)
			fmt.Fprintf(stdout, "GET /v1/profiles/{id}%s: %d reads, status %v, %d behind the acknowledged events\n", query, h.Count(), codes, behind)
			fmt.Fprintf(stdout, "latency ms: p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
				msStr(l.P50), msStr(l.P90), msStr(l.P99), msStr(l.P999), msStr(l.Max))
			return nil
		case <-tick.C:
		}
		id := fmt.Sprintf("u%0*d", width, rand.IntN(*users))
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodGet, *url+"/v1/profiles/"+id+query, nil)
			req.Header.Set("Authorization", "Bearer "+*token)
			start := time.Now()
			resp, err := client.Do(req)
			code, late := 0, false
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				code, late = resp.StatusCode, resp.Header.Get("Nudge-Profiles-Behind") != ""
				h.Record(time.Since(start))
			}
			mu.Lock()
			codes[code]++
			if late {
				behind++
			}
			mu.Unlock()
		}()
	}
}
