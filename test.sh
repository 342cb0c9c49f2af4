#!/usr/bin/env bash
# The whole test suite: unit, integration (real NATS JetStream at
# 127.0.0.1:4222, a real SMTP server: mailpit, built from the Go module
# proxy on first use), black-box tests of the built binary, the official
# Segment Node SDK against it, the dashboard in headless Chromium, and
# bounded fuzz runs of the parsers.
set -euo pipefail
cd "$(dirname "$0")"

nats_up() { (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; }
if ! nats_up; then
  if command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ]; then
    echo "test.sh: starting nats-server with JetStream on 127.0.0.1:4222"
    mkdir -p /tmp/nudge-test-nats
    (PATH=$PATH:/usr/sbin nohup nats-server -a 127.0.0.1 -p 4222 -js -sd /tmp/nudge-test-nats >/tmp/nudge-test-nats.log 2>&1 &)
    for _ in $(seq 50); do nats_up && break; sleep 0.2; done
  fi
  nats_up || { echo "test.sh: no NATS JetStream at 127.0.0.1:4222 (apt-get install nats-server, or start one)"; exit 1; }
fi

# The dashboard's browser test drives Debian's Chromium.
if ! command -v chromium >/dev/null; then
  echo "test.sh: installing chromium (apt-get) for the dashboard's browser test"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null ||
    { echo "test.sh: could not install chromium: apt-get install chromium"; exit 1; }
fi

sdk=cmd/nudge/testdata/segment-sdk
if [ ! -d "$sdk/node_modules/@segment/analytics-node" ]; then
  (cd "$sdk" && npm ci --no-audit --no-fund --loglevel=error)
fi

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go') | grep -v '^bench/' || true)
if [ -n "$unformatted" ]; then echo "test.sh: not gofmt-ed:"; echo "$unformatted"; exit 1; fi
go vet ./...
go test -race -count=1 -timeout 20m ./...
# Budgets are counts of executions, not durations: with a duration, Go 1.26's
# fuzz coordinator can report a spurious "context deadline exceeded" as the
# time runs out (golang/go#75804, fixed in Go 1.27). ~20 s and ~10 s here.
go test -run '^$' -fuzz '^FuzzParseSegment$' -fuzztime "${FUZZ_SEGMENT:-200000x}" ./ingest/
go test -run '^$' -fuzz '^FuzzParseCloudEvents$' -fuzztime "${FUZZ_CLOUDEVENTS:-60000x}" ./ingest/
go test -run '^$' -fuzz '^FuzzDecode$' -fuzztime "${FUZZ_EVENT:-100000x}" .
go test -run '^$' -fuzz '^FuzzApply$' -fuzztime "${FUZZ_PROFILE:-50000x}" ./profile/
go test -run '^$' -fuzz '^FuzzParseToken$' -fuzztime "${FUZZ_LINKS:-50000x}" ./engage/
