package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "nudge.yaml")
	os.WriteFile(file, []byte("http: 127.0.0.1:9000\ndata: /from/file\nwrite_keys: [file=k1]\npartitions: 8\ndedup_window: 2h\n"), 0o600)
	env := map[string]string{
		"NUDGE_DATA":      "/from/env",
		"NUDGE_WRITE_KEY": "web=k2,app=k3",
		"NUDGE_NATS":      "nats://127.0.0.1:4222",
	}
	cfg, err := loadConfig("test", []string{"--config", file, "--nats", "nats://10.0.0.1:4222", "--write-key", "cli=k4"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP != "127.0.0.1:9000" || cfg.Partitions != 8 || cfg.DedupWindow != 2*time.Hour {
		t.Errorf("file values lost: %+v", cfg)
	}
	if cfg.Data != "/from/env" {
		t.Errorf("data = %q, want the environment over the file", cfg.Data)
	}
	if cfg.NATS != "nats://10.0.0.1:4222" {
		t.Errorf("nats = %q, want the flag over the environment", cfg.NATS)
	}
	if !slices.Equal(cfg.WriteKeys, []string{"cli=k4"}) {
		t.Errorf("write keys = %v, want the flag's list only", cfg.WriteKeys)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

func TestConfigErrorsNameTheSetting(t *testing.T) {
	file := filepath.Join(t.TempDir(), "nudge.yaml")
	os.WriteFile(file, []byte("htp: 127.0.0.1:9000\n"), 0o600)
	_, err := loadConfig("test", []string{"--config=" + file}, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "htp") {
		t.Fatalf("unknown key in the file: %v", err)
	}
	_, err = loadConfig("test", nil, func(k string) string {
		if k == "NUDGE_PARTITIONS" {
			return "many"
		}
		return ""
	})
	if err == nil || !strings.Contains(err.Error(), "NUDGE_PARTITIONS") {
		t.Fatalf("bad environment value: %v", err)
	}
	cfg := defaultConfig()
	cfg.WriteKeys = []string{"web=", "a=k", "b=k"}
	cfg.HTTP = "nowhere"
	err = cfg.Validate()
	for _, want := range []string{"write_keys[0]", "http:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
	cfg.WriteKeys = []string{"a=k", "b=k"}
	if _, err := cfg.Sources(); err == nil || !strings.Contains(err.Error(), "write_keys[1]") {
		t.Errorf("a key given to two sources: %v", err)
	}
}
