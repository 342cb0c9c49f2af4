package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// adminClient talks to a running nudge's admin API, for the commands that
// operate one (nudge events tail, nudge dlq).
type adminClient struct {
	base, token, data string
}

// flags registers --url, --admin-token and --data on fs.
func (c *adminClient) flags(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&c.base, "url", envOr(getenv, "NUDGE_URL", "http://127.0.0.1:8080"), "base URL of the running nudge (env NUDGE_URL)")
	fs.StringVar(&c.token, "admin-token", getenv("NUDGE_ADMIN_TOKEN"), "admin token (env NUDGE_ADMIN_TOKEN; default: read from --data)")
	fs.StringVar(&c.data, "data", envOr(getenv, "NUDGE_DATA", "./nudge-data"), "data directory holding the development admin token")
}

// do sends a request and returns the response, or an error naming the
// answer when its status is not 2xx.
func (c *adminClient) do(ctx context.Context, method, path string) (*http.Response, error) {
	if c.token == "" {
		b, err := os.ReadFile(filepath.Join(c.data, adminTokenFile))
		if err != nil {
			return nil, fmt.Errorf("no admin token: pass --admin-token or NUDGE_ADMIN_TOKEN (%w)", err)
		}
		c.token = strings.TrimSpace(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.base, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return resp, nil
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}
