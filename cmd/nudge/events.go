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
	"strings"
)

// runEvents runs "nudge events tail": it follows a running nudge's live
// event stream and prints one JSON event a line.
func runEvents(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	if len(args) == 0 || args[0] != "tail" {
		return errors.New(`usage: nudge events tail [--url URL] [--admin-token TOKEN] [--user ID] [--type KIND] [--event NAME]`)
	}
	fs := flag.NewFlagSet("nudge events tail", flag.ContinueOnError)
	var c adminClient
	c.flags(fs, getenv)
	user := fs.String("user", "", "only this customer's events")
	kind := fs.String("type", "", "only events of this kind (track, identify, page...)")
	name := fs.String("event", "", "only track events of this name")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	q := url.Values{}
	for k, v := range map[string]string{"user": *user, "type": *kind, "event": *name} {
		if v != "" {
			q.Set(k, v)
		}
	}
	resp, err := c.do(ctx, http.MethodGet, "/v1/events/stream?"+q.Encode())
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer resp.Body.Close()
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
