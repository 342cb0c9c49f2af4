#!/usr/bin/env bash
# The runs behind README.md, one after the other (about 35 minutes). Each run
# bulk-loads 1M profiles and 2M history entries, then applies the uniform
# workload for at most 120 s; timeout kills a run that hangs.
set -uo pipefail
cd "$(dirname "$0")"
go build -o /tmp/storeengines-bench .
out=${OUT:-/tmp/storeengines-logs}
mkdir -p "$out"
run() { # name, flags...
  local name=$1; shift
  echo "== $name: /tmp/storeengines-bench $*"
  timeout 420 /tmp/storeengines-bench -n 1000000 -preload 2000000 -events 4000000 -batch 5000 -dist uniform -maxdur 120s "$@" >"$out/$name.log" 2>&1
  echo "   exit $?"; grep '^| [a-z]' "$out/$name.log" | tail -1
}
run pebble-nosync        -engine pebble -v
run bbolt-nosync         -engine bbolt
run sqlite-normal        -engine sqlite
run sqlite-off           -engine sqlite -sqlite-synchronous OFF
run pebble-sync          -engine pebble -sync
run bbolt-sync           -engine bbolt -sync
run sqlite-full          -engine sqlite -sync
run pebble-nosync-valsep -engine pebble -pebble-valsep -v
run pebble-nosync-comp2  -engine pebble -pebble-compactions 2 -v

# Erasure: a small store, one marked customer, files grepped after each step.
for e in pebble bbolt sqlite; do
  timeout 300 /tmp/storeengines-bench -erasure -engine $e -n 50000 -events 300000 >"$out/erasure-$e.log" 2>&1
done
timeout 300 /tmp/storeengines-bench -erasure -engine sqlite -sqlite-secure-delete -n 50000 -events 300000 >"$out/erasure-sqlite-secure.log" 2>&1
