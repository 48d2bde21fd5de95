#!/usr/bin/env bash
# Demo: two real HTTP backends (python3 -m http.server) behind tether with configs/minimal.toml,
# 30 requests through the proxy, and the per-backend split they produced.
# Uses 127.0.0.1:8080 (tether), :9001 and :9002 (backends); ends every process it started.
set -euo pipefail
cd "$(dirname "$0")/.."

for port in 8080 9001 9002; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is in use; stop whatever listens there and retry" >&2
        exit 1
    fi
done

echo "building tether (release; a few minutes the first time)..."
cargo build --release --quiet
echo "starting two backends on 127.0.0.1:9001 and :9002 and tether on 127.0.0.1:8080..."
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

for i in 1 2; do
    mkdir -p "$work/app-$i"
    echo "hello from app-$i" > "$work/app-$i/index.html"
    python3 -m http.server "900$i" --bind 127.0.0.1 --directory "$work/app-$i" >/dev/null 2>&1 &
    pids+=($!)
done
# Wait for both backends, then tether, to answer (deadline 10 s each).
for port in 9001 9002; do
    for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && break; sleep 0.1; done
done
RUST_LOG=warn ./target/release/tether run -c configs/minimal.toml &
pids+=($!)
for _ in $(seq 100); do curl -fsS -o /dev/null http://127.0.0.1:8080/ 2>/dev/null && break; sleep 0.1; done

echo "30 requests through tether (round robin, equal weights):"
for _ in $(seq 30); do curl -fsS http://127.0.0.1:8080/; done | sort | uniq -c
