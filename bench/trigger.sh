#!/bin/sh
# Time to trigger: background traffic of RATE batches/s of 100 shop events
# (open loop), and PROBES single "Checkout Started" events a second sent
# to /v1/track beside it, each of which triggers a journey whose webhook
# goes to a local receiver (nudge-load receive). PROBES=0 sends no probes
# and keeps "Checkout Started" in the background instead (one event in
# five: 2,000 webhooks a second at RATE 100). Prints the receiver's
# end-to-end figures (the client's send, stamped in the event's timestamp,
# to the webhook's arrival) and nudge's own histogram (event acknowledged
# -> webhook attempted) from /metrics. NUDGE_BIN runs a prebuilt binary.
# Loopback only.
#
#   bench/trigger.sh [RATE] [DURATION] [PROBES]   (default 10 30s 100: 1,000 events/s)
set -eu
RATE=${1:-10}
DURATION=${2:-30s}
PROBES=${3:-100}
DATA=$(mktemp -d /var/tmp/nudge-trigger.XXXXXX)
trap 'kill $NUDGE $RECV ${BACKGROUND:-} 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DATA"' EXIT
if [ -n "${NUDGE_BIN:-}" ]; then cp "$NUDGE_BIN" "$DATA/nudge"; else go build -o "$DATA/nudge" ./cmd/nudge; fi
go build -o "$DATA/nudge-load" ./cmd/nudge-load
"$DATA/nudge-load" receive --addr 127.0.0.1:18384 --warmup 5s >"$DATA/recv" &
RECV=$!
mkdir -p "$DATA/journeys"
cat >"$DATA/journeys/checkout.yaml" <<'YAML'
id: checkout-ping
trigger:
  event: Checkout Started
reentry: every_time
steps:
  - id: ping
    send:
      channel: webhook
      content:
        url: http://127.0.0.1:18384/hook
        body: '{"ts": {{ event.timestamp | json }}}'
YAML
"$DATA/nudge" serve --data "$DATA/d" --http 127.0.0.1:18383 --write-key load --admin-token adm \
	--journeys "$DATA/journeys" --log-level warn >"$DATA/out" 2>&1 &
NUDGE=$!
until curl -sf http://127.0.0.1:18383/readyz >/dev/null; do sleep 0.2; done
load() { "$DATA/nudge-load" run --url http://127.0.0.1:18383 --write-key load --duration "$DURATION" --users 100000 "$@"; }
if [ "$PROBES" = 0 ]; then
	load --rate "$RATE" --pid $NUDGE | grep -E "throughput|latency|target"
else
	load --rate "$RATE" --events "Product Viewed,Product Added,Order Completed,Product Clicked" --pid $NUDGE \
		>"$DATA/background" 2>&1 &
	BACKGROUND=$!
	echo "probes:"
	load --rate "$PROBES" --mode track --events "Checkout Started" | grep -E "throughput|latency"
	wait $BACKGROUND
	echo "background:"
	grep -E "throughput|latency|target" "$DATA/background"
fi
sleep 3
kill $RECV; wait $RECV 2>/dev/null || true
cat "$DATA/recv"
curl -s http://127.0.0.1:18383/metrics | grep '^nudge_time_to_trigger_seconds' | awk '
	/_bucket/ { match($0, /le="[^"]*"/); le = substr($0, RSTART+4, RLENGTH-5); b[++n] = le; c[n] = $2 }
	/_count/ { total = $2 }
	END {
		printf "sends %d\n", total
		for (i = 1; i <= n; i++) printf "  <= %s s: %.1f%%\n", b[i], 100 * c[i] / total
	}'
