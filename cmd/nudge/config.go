package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
)

// Config is everything nudge serve needs. Each field is settable from a YAML
// file (--config), from the environment (NUDGE_<NAME>), and from a flag;
// a flag beats the environment, which beats the file, which beats the
// default.
type Config struct {
	HTTP        string        `yaml:"http"`
	Data        string        `yaml:"data"`
	WriteKeys   []string      `yaml:"write_keys"` // KEY or SOURCE=KEY
	AdminToken  string        `yaml:"admin_token"`
	NATS        string        `yaml:"nats"` // external JetStream URL; empty runs it embedded
	NATSStream  string        `yaml:"nats_stream"`
	Partitions  int           `yaml:"partitions"`
	DedupWindow time.Duration `yaml:"dedup_window"`
	DedupMax    int           `yaml:"dedup_max_keys"`
	Durability  string        `yaml:"durability"` // "fsync" (default) or "none"
	LogFormat   string        `yaml:"log_format"` // "text" or "json"
	LogLevel    string        `yaml:"log_level"`
	Shutdown    time.Duration `yaml:"shutdown_timeout"`
	// Debug is the listen address of Go's profiler (net/http/pprof);
	// empty serves none.
	Debug string `yaml:"debug_addr"`
	// IdentityTraits are the traits besides email whose values identify a
	// person across profiles.
	IdentityTraits []string `yaml:"identity_traits"`
	// Journeys is a directory of journey files; empty runs the shipped
	// examples.
	Journeys string `yaml:"journeys"`
	// Channels configures the providers messages go out through.
	Channels ChannelsConfig `yaml:",inline"`
}

func defaultConfig() Config {
	return Config{
		HTTP:           "127.0.0.1:8080",
		Data:           "./nudge-data",
		NATSStream:     "NUDGE_EVENTS",
		Partitions:     16,
		DedupWindow:    24 * time.Hour,
		DedupMax:       5_000_000,
		Durability:     "fsync",
		LogFormat:      "text",
		LogLevel:       "info",
		Shutdown:       20 * time.Second,
		IdentityTraits: []string{"phone"},
	}
}

// listFlag is a repeatable flag over a list that came from the file or the
// environment: its first use replaces that list, later uses append.
type listFlag struct {
	list    *[]string
	changed bool
}

func (l *listFlag) String() string {
	if l.list == nil {
		return ""
	}
	return strings.Join(*l.list, ",")
}

func (l *listFlag) Set(v string) error {
	if !l.changed {
		*l.list, l.changed = nil, true
	}
	*l.list = append(*l.list, v)
	return nil
}

// flags binds the command-line flags to cfg's fields.
func flags(name string, cfg *Config) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.String("config", "", "YAML config file (env NUDGE_CONFIG)")
	fs.StringVar(&cfg.HTTP, "http", cfg.HTTP, "listen address for the HTTP API")
	fs.StringVar(&cfg.Data, "data", cfg.Data, "data directory")
	fs.Var(&listFlag{list: &cfg.WriteKeys}, "write-key", "a write key, KEY or SOURCE=KEY; repeatable (env: comma-separated)")
	fs.StringVar(&cfg.AdminToken, "admin-token", cfg.AdminToken, "bearer token of the admin API")
	fs.StringVar(&cfg.NATS, "nats", cfg.NATS, "external NATS JetStream URL; empty runs JetStream embedded")
	fs.StringVar(&cfg.NATSStream, "nats-stream", cfg.NATSStream, "name of the event log's stream; its subjects are the name in lower case, '_' as '.' (NUDGE_EVENTS: nudge.events.<partition>)")
	fs.IntVar(&cfg.Partitions, "partitions", cfg.Partitions, "event log partitions, fixed when the log is created")
	fs.DurationVar(&cfg.DedupWindow, "dedup-window", cfg.DedupWindow, "how long a messageId is remembered")
	fs.IntVar(&cfg.DedupMax, "dedup-max-keys", cfg.DedupMax, "memory bound of the dedup index, in keys")
	fs.StringVar(&cfg.Durability, "durability", cfg.Durability, `"fsync": a 200 survives power loss; "none": faster, a 200 survives a crash of nudge but not of the machine`)
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "text or json")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	fs.DurationVar(&cfg.Shutdown, "shutdown-timeout", cfg.Shutdown, "how long a graceful shutdown may take")
	fs.StringVar(&cfg.Debug, "debug-addr", cfg.Debug, "listen address of Go's profiler (/debug/pprof/), for operators; keep it on loopback; empty: off")
	fs.StringVar(&cfg.Journeys, "journeys", cfg.Journeys, "directory of journey files (YAML); empty: the shipped examples")
	fs.Var(&listFlag{list: &cfg.IdentityTraits}, "identity-trait", "a trait that identifies a person besides email (default phone); repeatable (env: comma-separated)")
	channelFlags(fs, &cfg.Channels)
	return fs
}

// envName is the environment variable of a flag: NUDGE_WRITE_KEY for --write-key.
func envName(flagName string) string {
	return "NUDGE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// loadConfig builds the configuration from, lowest precedence first, the
// defaults, the YAML file named by --config or NUDGE_CONFIG, the
// environment, and the flags in args.
func loadConfig(name string, args []string, getenv func(string) string) (Config, error) {
	cfg := defaultConfig()
	if path := configPath(args, getenv); path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		if err := yaml.UnmarshalWithOptions(data, &cfg, yaml.Strict()); err != nil {
			return cfg, fmt.Errorf("config %s: %s", path, yaml.FormatError(err, false, true))
		}
	}
	fs := flags(name, &cfg)
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		v := getenv(envName(f.Name))
		if v == "" || f.Name == "config" {
			return
		}
		if l, ok := f.Value.(*listFlag); ok { // comma-separated
			*l.list = strings.Split(v, ",")
			return
		}
		if err := f.Value.Set(v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", envName(f.Name), err))
		}
	})
	if len(errs) > 0 {
		return cfg, errors.Join(errs...)
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return cfg, nil
}

// configPath finds --config in args before the flags are parsed, since the
// file's values must lie under the flags'.
func configPath(args []string, getenv func(string) string) string {
	for i, a := range args {
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "config" {
			continue
		}
		if hasValue {
			return value
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return getenv("NUDGE_CONFIG")
}

// Validate reports every problem of the configuration at once, each naming
// the setting.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.HTTP); err != nil {
		errs = append(errs, fmt.Errorf("http: %q is not host:port: %w", c.HTTP, err))
	}
	if _, _, err := net.SplitHostPort(c.Debug); c.Debug != "" && err != nil {
		errs = append(errs, fmt.Errorf("debug_addr: %q is not host:port: %w", c.Debug, err))
	}
	if c.Data == "" {
		errs = append(errs, errors.New("data: must not be empty"))
	}
	if _, err := c.Sources(); err != nil {
		errs = append(errs, err)
	}
	if c.Partitions < 1 || c.Partitions > 1024 {
		errs = append(errs, fmt.Errorf("partitions: %d is not between 1 and 1024", c.Partitions))
	}
	if c.DedupWindow < time.Minute {
		errs = append(errs, fmt.Errorf("dedup_window: %s is shorter than a minute", c.DedupWindow))
	}
	if c.DedupMax < 1000 {
		errs = append(errs, fmt.Errorf("dedup_max_keys: %d is below 1000", c.DedupMax))
	}
	if c.Durability != "fsync" && c.Durability != "none" {
		errs = append(errs, fmt.Errorf(`durability: %q is neither "fsync" nor "none"`, c.Durability))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf(`log_format: %q is neither "text" nor "json"`, c.LogFormat))
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if c.NATS != "" && !strings.Contains(c.NATS, "://") {
		errs = append(errs, fmt.Errorf("nats: %q is not a URL such as nats://127.0.0.1:4222", c.NATS))
	}
	if c.NATSStream == "" || strings.ContainsAny(c.NATSStream, " \t.*>/\\") {
		errs = append(errs, fmt.Errorf("nats_stream: %q is not a stream name (letters, digits, '_' and '-')", c.NATSStream))
	}
	if c.Shutdown <= 0 {
		errs = append(errs, fmt.Errorf("shutdown_timeout: %s must be positive", c.Shutdown))
	}
	errs = append(errs, c.Channels.validate()...)
	return errors.Join(errs...)
}

// streamSubject is the subject prefix of the event log's stream.
func (c Config) streamSubject() string {
	return strings.ToLower(strings.ReplaceAll(c.NATSStream, "_", "."))
}

// Sources maps each write key to its source name. A bare KEY's source is
// named "default".
func (c Config) Sources() (map[string]string, error) {
	out := make(map[string]string, len(c.WriteKeys))
	for i, wk := range c.WriteKeys {
		source, key, found := strings.Cut(wk, "=")
		if !found {
			source, key = "default", wk
		}
		switch {
		case key == "" || source == "":
			return nil, fmt.Errorf("write_keys[%d]: %q: want KEY or SOURCE=KEY", i, wk)
		case strings.ContainsAny(key, ": \t"):
			return nil, fmt.Errorf("write_keys[%d]: a key must not contain spaces or ':'", i)
		}
		if prev, dup := out[key]; dup {
			return nil, fmt.Errorf("write_keys[%d]: the key is already the key of source %q", i, prev)
		}
		out[key] = source
	}
	return out, nil
}

// publicURL is the base URL customers and providers reach nudge at.
func (c Config) publicURL() string {
	if c.Channels.PublicURL != "" {
		return c.Channels.PublicURL
	}
	return "http://" + c.HTTP
}
