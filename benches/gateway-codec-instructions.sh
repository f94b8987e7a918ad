#!/usr/bin/env bash
# Instructions per FIX codec operation, counted by valgrind (callgrind), which needs no
# hardware counters: (run with N operations − run with 0) / N. "validate" includes a parse.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p ferrox-gateway --example codec_cost
bin=target/release/examples/codec_cost
count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
n=100000
for op in parse validate encode-er encode-heartbeat; do
    base=$(count "$op" 0)
    full=$(count "$op" "$n")
    echo "$op: $(( (full - base) / n )) instructions per operation"
done
