package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// runEvents runs "nudge events tail": it follows a running nudge's live
// event stream and prints one JSON event a line.
func runEvents(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	if len(args) == 0 || args[0] != "tail" {
		return errors.New(`usage: nudge events tail [--url URL] [--admin-token TOKEN] [--user ID] [--type KIND] [--event NAME]`)
	}
	fs := flag.NewFlagSet("nudge events tail", flag.ContinueOnError)
	base := fs.String("url", envOr(getenv, "NUDGE_URL", "http://127.0.0.1:8080"), "base URL of the nudge to follow (env NUDGE_URL)")
	token := fs.String("admin-token", getenv("NUDGE_ADMIN_TOKEN"), "admin token (env NUDGE_ADMIN_TOKEN; default: read from --data)")
	data := fs.String("data", envOr(getenv, "NUDGE_DATA", "./nudge-data"), "data directory holding the development admin token")
	user := fs.String("user", "", "only this customer's events")
	kind := fs.String("type", "", "only events of this kind (track, identify, page...)")
	name := fs.String("event", "", "only track events of this name")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *token == "" {
		b, err := os.ReadFile(filepath.Join(*data, adminTokenFile))
		if err != nil {
			return fmt.Errorf("no admin token: pass --admin-token or NUDGE_ADMIN_TOKEN (%w)", err)
		}
		*token = strings.TrimSpace(string(b))
	}
	q := url.Values{}
	for k, v := range map[string]string{"user": *user, "type": *kind, "event": *name} {
		if v != "" {
			q.Set(k, v)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(*base, "/")+"/v1/events/stream?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+*token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			fmt.Fprintln(stdout, data)
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}
