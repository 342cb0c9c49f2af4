#!/bin/bash
# The whole pipeline's cost: REQUESTS batches of 100 events at RATE batches/s
# over 100,000 users into `nudge serve` with the shipped journeys, then wait
# until the profile consumer has applied them all. Prints how long that took
# after the load ended and nudge's CPU per event over the whole of it
# (ingest, log, profiles, journeys, sends, the store's compactions, GC).
# NUDGE_BIN runs a prebuilt binary (to alternate two builds); loopback only.
#
#   bench/pipeline.sh [REQUESTS] [RATE]        (default 4000 200: 400,000 events at 20,000/s)
set -eu
REQUESTS=${1:-4000}
RATE=${2:-200}
DATA=$(mktemp -d /var/tmp/nudge-pipeline.XXXXXX)
trap 'kill $NUDGE 2>/dev/null || true; wait $NUDGE 2>/dev/null || true; rm -rf "$DATA"' EXIT
if [ -n "${NUDGE_BIN:-}" ]; then cp "$NUDGE_BIN" "$DATA/nudge"; else go build -o "$DATA/nudge" ./cmd/nudge; fi
go build -o "$DATA/nudge-load" ./cmd/nudge-load
"$DATA/nudge" serve --data "$DATA/d" --http 127.0.0.1:18395 --write-key load --admin-token adm \
	--log-level warn >"$DATA/out" 2>&1 &
NUDGE=$!
until curl -sf http://127.0.0.1:18395/readyz >/dev/null; do sleep 0.2; done
cpu() { awk '{print $14 + $15}' /proc/$NUDGE/stat; }
lag() { curl -s http://127.0.0.1:18395/metrics | awk '$1 == "nudge_consumer_lag_messages{consumer=\"profiles\"}" {print $2}'; }
cpu0=$(cpu)
"$DATA/nudge-load" run --url http://127.0.0.1:18395 --write-key load --users 100000 --rate "$RATE" \
	--requests "$REQUESTS" --pid $NUDGE 2>&1 | grep -E "throughput|latency"
loaded=$(date +%s.%N)
until [ "$(lag)" = 0 ]; do sleep 0.5; done
awk -v t0="$loaded" -v t1="$(date +%s.%N)" -v c0="$cpu0" -v c1="$(cpu)" -v hz="$(getconf CLK_TCK)" -v n="$REQUESTS" \
	-v rss="$(awk '/VmRSS/ {print $2}' /proc/$NUDGE/status)" 'BEGIN {
	printf "profiles caught up %.1f s after the load; nudge CPU %.1f s = %.1f us an event; RSS %d MB\n",
		t1 - t0, (c1 - c0) / hz, (c1 - c0) / hz * 1e6 / (n * 100), rss / 1024 }'
