#!/bin/sh
# One million profiles: load 2 million events over 1,000,000 users, wait
# until the profile consumer has applied them, report nudge's RSS and the
# data directory's size; then read profiles (nudge-load probe) while ingest
# runs at 10,000 events/s, and the profile consumer's lag after that minute.
# NUDGE_BIN runs a prebuilt binary (to alternate two builds); PROBE_WAIT
# is the reads' wait parameter (0: they do not wait for read-your-writes).
# Bounded in time; loopback only.
#
#   bench/million.sh [USERS] [REQUESTS]        (default 1000000 20000: batches of 100)
set -eu
USERS=${1:-1000000}
REQUESTS=${2:-20000}
DATA=$(mktemp -d /var/tmp/nudge-million.XXXXXX)
trap 'kill $NUDGE 2>/dev/null || true; wait $NUDGE 2>/dev/null || true; rm -rf "$DATA"' EXIT
if [ -n "${NUDGE_BIN:-}" ]; then cp "$NUDGE_BIN" "$DATA/nudge"; else go build -o "$DATA/nudge" ./cmd/nudge; fi
go build -o "$DATA/nudge-load" ./cmd/nudge-load
"$DATA/nudge" serve --data "$DATA/d" --http 127.0.0.1:18282 --write-key load --admin-token adm \
	--log-level warn >"$DATA/out" 2>&1 &
NUDGE=$!
until curl -sf http://127.0.0.1:18282/readyz >/dev/null; do sleep 0.2; done
metric() { curl -s http://127.0.0.1:18282/metrics | awk -v m="$1" '$1 == m {print $2}'; }
"$DATA/nudge-load" run --url http://127.0.0.1:18282 --write-key load --users "$USERS" \
	--requests "$REQUESTS" --warmup 0s --clients 32
start=$(date +%s)
until [ "$(metric 'nudge_consumer_lag_messages{consumer="profiles"}')" = 0 ]; do
	[ $(( $(date +%s) - start )) -gt 900 ] && { echo "profiles did not catch up in 15 min"; break; }
	sleep 5
done
echo "caught up $(( $(date +%s) - start )) s after the load ended; profiles created: $(metric nudge_profiles_created_total)"
echo "nudge RSS $(( $(metric process_resident_memory_bytes | awk '{printf "%d", $1}') / 1048576 )) MB"
du -sh "$DATA/d"; du -sh "$DATA/d"/* # two calls: one du counts a directory once
"$DATA/nudge-load" probe --url http://127.0.0.1:18282 --admin-token adm --users "$USERS" --rate 50 --duration 60s \
	${PROBE_WAIT:+--wait "$PROBE_WAIT"} &
PROBE=$!
"$DATA/nudge-load" run --url http://127.0.0.1:18282 --write-key load --users "$USERS" --rate 100 --duration 60s --warmup 0s >/dev/null
wait $PROBE
echo "profile consumer's lag after that minute: $(metric 'nudge_consumer_lag_messages{consumer="profiles"}') log messages"
echo "nudge RSS $(( $(metric process_resident_memory_bytes | awk '{printf "%d", $1}') / 1048576 )) MB after"
