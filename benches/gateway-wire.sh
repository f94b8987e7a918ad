#!/usr/bin/env bash
# Wire-to-wire figures of the FIX gateway (BENCHMARKS.md, "FIX gateway"): starts the exchange
# on its default configuration in a temporary directory, then runs, in order, the echo floor
# and the FIX load at each rate (same run, same connections count), and the 1,000-session hold.
# Usage: benches/gateway-wire.sh [RATE ...]   (default: 1000 5000 10000 20000 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p ferrox -p ferrox-benches
rates=("$@"); [ ${#rates[@]} -gt 0 ] || rates=(1000 5000 10000 20000 100000)
dir=$(mktemp -d)
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
(cd "$dir" && exec "$OLDPWD/target/release/ferrox" engine 2> ex.err) &
pid=$!
for _ in $(seq 1 120); do grep -q "FIX gateway listening" "$dir/ex.err" 2>/dev/null && break; sleep 0.5; done
grep "FIX gateway listening" "$dir/ex.err"
for r in "${rates[@]}"; do
    echo "=== $r messages/s, 100 sessions"
    target/release/ferrox-fix-bench load --sessions 100 --rate "$r" --seconds 10 --warmup 1 --with-echo
done
echo "=== 1,000 sessions held"
target/release/ferrox-fix-bench hold --sessions 1000 --seconds 20 --heartbeat 5
