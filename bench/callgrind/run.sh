#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind (stable on a noisy host, unlike time).
#
# Method: tether (`threads = 1`, default pool settings, two `tether-bench backend`s on ports
# 19001-19002) runs under `valgrind --tool=callgrind --instr-atstart=no`; a 2 s warm-up at
# 500 req/s, then instrumentation on for 10,000 `GET /healthz` at 1,000 req/s over 16 keep-alive
# connections (`tether-bench rate`), off, and the count divided by the requests.
#
# Usage: bench/callgrind/run.sh TETHER_BINARY OUT_FILE [CONFIG]
#   e.g. cargo build --release && bench/callgrind/run.sh target/release/tether /tmp/cg.out
# Compare two builds by alternating runs of each (A, B, A, B). Prints: binary, instructions,
# requests, instructions per request.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
BIN=$1; OUT=$2; CFG=${3:-$here/tether.toml}
BENCH="$here/../../target/release/tether-bench"
[ -x "$BENCH" ] || BENCH="$here/../../target/debug/tether-bench"
for tool in valgrind callgrind_control callgrind_annotate curl python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "needs $tool" >&2; exit 2; }
done
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
"$BENCH" backend --id b1 --listen 127.0.0.1:19001 >/dev/null 2>&1 & pids+=($!)
"$BENCH" backend --id b2 --listen 127.0.0.1:19002 >/dev/null 2>&1 & pids+=($!)
RUST_LOG=warn valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT" \
    "$BIN" run -c "$CFG" >/dev/null 2>&1 & VG=$!; pids+=($VG)
for _ in $(seq 1 100); do curl -sf -o /dev/null http://127.0.0.1:19000/healthz && break; sleep 0.2; done
"$BENCH" rate --target 127.0.0.1:19000 --rate 500 --duration 2s --connections 16 --path /healthz >/dev/null
callgrind_control -i on "$VG" >/dev/null
"$BENCH" rate --target 127.0.0.1:19000 --rate 1000 --duration 10s --connections 16 \
    --path /healthz --json > "$OUT.rate.json"
callgrind_control -i off "$VG" >/dev/null
callgrind_control -d "$VG" >/dev/null
kill "$VG" 2>/dev/null || true; wait "$VG" 2>/dev/null || true
# awk reads to the end: an early exit would kill callgrind_annotate with SIGPIPE (pipefail).
ir=$(callgrind_annotate "$OUT.1" 2>/dev/null | awk '/PROGRAM TOTALS/ && !n {gsub(",","",$1); print $1; n=1}')
n=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['requests'])" "$OUT.rate.json")
python3 -c "import sys; ir, n = int(sys.argv[2]), int(sys.argv[3]); print(sys.argv[1], ir, n, round(ir / n))" "$BIN" "$ir" "$n"
