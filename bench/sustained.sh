#!/bin/sh
# Sustained load with the profile consumer: open-loop ingest at RATE
# batches/s of 100 events for DURATION, while the consumer lag, the forward
# lag and nudge's RSS are sampled every 30 s from /metrics. Prints the
# samples, then nudge-load's report. NUDGE_BIN runs a prebuilt binary;
# JOURNEYS=DIR loads that directory's journeys instead of the shipped ones
# (an empty directory: ingest and profiles alone). Bounded in time;
# loopback only.
#
#   bench/sustained.sh [RATE] [DURATION] [USERS]      (default 500 10m 1000000)
set -eu
RATE=${1:-500}
DURATION=${2:-10m}
USERS=${3:-1000000}
DATA=$(mktemp -d /var/tmp/nudge-sustained.XXXXXX)
trap 'kill $NUDGE 2>/dev/null || true; wait $NUDGE 2>/dev/null || true; rm -rf "$DATA"' EXIT
if [ -n "${NUDGE_BIN:-}" ]; then cp "$NUDGE_BIN" "$DATA/nudge"; else go build -o "$DATA/nudge" ./cmd/nudge; fi
go build -o "$DATA/nudge-load" ./cmd/nudge-load
"$DATA/nudge" serve --data "$DATA/d" --http 127.0.0.1:18181 --write-key load --admin-token adm \
	--log-level warn ${JOURNEYS:+--journeys "$JOURNEYS"} >"$DATA/out" 2>&1 &
NUDGE=$!
until curl -sf http://127.0.0.1:18181/readyz >/dev/null; do sleep 0.2; done
sample() {
	curl -s http://127.0.0.1:18181/metrics | awk -v t="$(date +%T)" '
		/^nudge_consumer_lag_messages/ {lag=$2}
		/^nudge_forward_lag_bytes/ {fwd=$2}
		/^nudge_profile_events_total/ {ev=$2}
		/^process_resident_memory_bytes/ {rss=$2}
		END {printf "%s consumer_lag_msgs=%s forward_lag_bytes=%s profile_events=%d rss_mb=%.0f\n", t, lag, fwd, ev, rss/1048576}'
}
( while kill -0 $NUDGE 2>/dev/null; do sample; sleep 30; done ) &
SAMPLER=$!
"$DATA/nudge-load" run --url http://127.0.0.1:18181 --write-key load --rate "$RATE" \
	--duration "$DURATION" --users "$USERS" --pid $NUDGE
sleep 5
sample
kill $SAMPLER 2>/dev/null || true
du -sh "$DATA/d"; du -sh "$DATA/d"/* # two calls: one du counts a directory once
