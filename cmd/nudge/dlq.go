package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"
)

const dlqUsage = `usage: nudge dlq list [--limit N] [--after ID] [flags]
       nudge dlq show ID [flags]
       nudge dlq redrive ID [flags]
       nudge dlq discard ID [flags]
flags: --url URL --admin-token TOKEN --data DIR`

// runDLQ runs "nudge dlq ...": the dead-letter queue of a running nudge.
func runDLQ(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		return errors.New(dlqUsage)
	}
	sub := args[0]
	fs := flag.NewFlagSet("nudge dlq "+sub, flag.ContinueOnError)
	var c adminClient
	c.flags(fs, getenv)
	limit := fs.Int("limit", 50, "list: entries per page")
	after := fs.String("after", "", "list: start after this entry id")
	var id string
	rest := args[1:]
	if sub != "list" {
		if len(rest) == 0 || rest[0] == "" || rest[0][0] == '-' {
			return fmt.Errorf("nudge dlq %s needs the id of an entry (nudge dlq list shows them)\n%s", sub, dlqUsage)
		}
		id, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	switch sub {
	case "list":
		q := url.Values{"limit": {fmt.Sprint(*limit)}}
		if *after != "" {
			q.Set("after", *after)
		}
		var page struct {
			Items []struct {
				ID, Journey, Step, Channel, Error string
				Attempts                          int
				FailedAt                          time.Time
			}
			Next  string
			Total int64
		}
		if err := c.getJSON(ctx, "/v1/dlq?"+q.Encode(), &page); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tFAILED\tJOURNEY\tSTEP\tCHANNEL\tATTEMPTS\tERROR")
		for _, it := range page.Items {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", it.ID, it.FailedAt.Format(time.RFC3339), it.Journey, it.Step, it.Channel, it.Attempts, it.Error)
		}
		tw.Flush()
		fmt.Fprintf(stdout, "%d of %d dead letters", len(page.Items), page.Total)
		if page.Next != "" {
			fmt.Fprintf(stdout, "; more with --after %s", page.Next)
		}
		fmt.Fprintln(stdout)
		return nil
	case "show":
		var v any
		if err := c.getJSON(ctx, "/v1/dlq/"+url.PathEscape(id), &v); err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "redrive", "discard":
		method, path := http.MethodPost, "/v1/dlq/"+url.PathEscape(id)+"/redrive"
		if sub == "discard" {
			method, path = http.MethodDelete, "/v1/dlq/"+url.PathEscape(id)
		}
		resp, err := c.do(ctx, method, path)
		if err != nil {
			return err
		}
		resp.Body.Close()
		fmt.Fprintf(stdout, "%s: %s\n", map[string]string{"redrive": "redriven", "discard": "discarded"}[sub], id)
		return nil
	}
	return fmt.Errorf("unknown dlq command %q\n%s", sub, dlqUsage)
}

func (c *adminClient) getJSON(ctx context.Context, path string, v any) error {
	resp, err := c.do(ctx, http.MethodGet, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}
