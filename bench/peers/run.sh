#!/usr/bin/env bash
# Side-by-side benchmark of tether, HAProxy and nginx on this machine.
#
# Method: two identical nginx backends (one worker) and the load generators share core 1; each
# proxy runs with one worker/thread pinned to core 0, all three with equivalent settings (round
# robin over the same two backends, keep-alive upstream, no access log, the same three
# X-Forwarded-* headers added to each request). Runs are interleaved
# (tether, haproxy, nginx, tether, ...) and each figure is the median of the repeats, with the
# min-max range. Metrics per proxy:
#   - saturation: wrk -t1 -c64 for DURATION seconds: requests/s and the proxy's CPU time per
#     request (utime+stime from /proc/PID/stat over the run, divided by requests);
#   - fixed rates (5k and 15k req/s): `tether-bench rate`, latency from the intended send time
#     (p50/p99/p99.9) and CPU per request at that rate;
#   - memory: RSS idle, and the growth with 1000 idle keep-alive client connections (each served
#     one request, then read after 2 s and after 5 s idle), opened one after another (`serial`:
#     the client connections' own cost) and all at once (`burst`: the proxy also opens backend
#     connections for the requests in flight, and keeps some of them).
# It reports; it never fails on the numbers.
#
# Build: the `profiling` profile (Cargo.toml: the release profile plus limited debug info), so that
# perf or callgrind can be pointed at the proxy under test with symbols and source lines. The
# code is the release build's; shipped release binaries only lack the debug information.
# bench/RESULTS.md was recorded with exactly this configuration (then `[profile.release]
# debug = 1`).
#
# Usage: bench/peers/run.sh [REPEATS] [DURATION_SECONDS]     (defaults 3 and 8)
set -euo pipefail
cd "$(dirname "$0")/../.."
REPEATS=${1:-3}
DURATION=${2:-8}
WORK=/tmp/tether-peers
mkdir -p "$WORK"
RESULTS="$WORK/results.jsonl"
: > "$RESULTS"

need=()
for tool in haproxy nginx wrk taskset curl python3; do command -v "$tool" >/dev/null 2>&1 || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
    pkgs=$(printf '%s\n' "${need[@]}" | sed 's/taskset/util-linux/' | sort -u | tr '\n' ' ')
    echo "installing: $pkgs" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $pkgs >/dev/null
fi
if [ "$(nproc)" -lt 2 ]; then echo "needs at least 2 cores" >&2; exit 2; fi
for port in 9101 9102 9200 9300 9400; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is in use; stop what listens there first" >&2; exit 2
    fi
done

cargo build --profile profiling -q -p tether -p tether-bench
TETHER=target/profiling/tether
RATE=target/profiling/tether-bench

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

taskset -c 1 nginx -c "$PWD/bench/peers/backend-nginx.conf" & pids+=($!)
RUST_LOG=warn taskset -c 0 "$TETHER" run -c bench/peers/tether.toml & pids+=($!); TETHER_PID=$!
taskset -c 0 haproxy -f bench/peers/haproxy.cfg -db & pids+=($!); HAPROXY_PID=$!
taskset -c 0 nginx -c "$PWD/bench/peers/nginx-proxy.conf" & pids+=($!); NGINX_MASTER=$!
for port in 9101 9102 9200 9300 9400; do
    for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && break; sleep 0.1; done
done
NGINX_PID=$(pgrep -P "$NGINX_MASTER" | head -1)  # the proxy's single worker
declare -A PID=([tether]=$TETHER_PID [haproxy]=$HAPROXY_PID [nginx]=$NGINX_PID)
declare -A PORT=([tether]=9200 [haproxy]=9300 [nginx]=9400)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
TCK=$(getconf CLK_TCK)

for r in $(seq "$REPEATS"); do
    for proxy in tether haproxy nginx; do
        pid=${PID[$proxy]}; port=${PORT[$proxy]}
        echo "repeat $r/$REPEATS: $proxy" >&2
        t0=$(cpu_ticks "$pid")
        out=$(taskset -c 1 wrk -t1 -c64 -d"${DURATION}s" "http://127.0.0.1:$port/")
        t1=$(cpu_ticks "$pid")
        reqs=$(echo "$out" | awk '/requests in/ {print $1}')
        rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
        cpu=$(awk -v a="$t0" -v b="$t1" -v t="$TCK" -v n="$reqs" 'BEGIN { printf "%.3f", (b - a) * 1000000 / t / n }')
        echo "{\"proxy\":\"$proxy\",\"metric\":\"sat_rps\",\"value\":$rps}" >> "$RESULTS"
        echo "{\"proxy\":\"$proxy\",\"metric\":\"sat_cpu_us\",\"value\":$cpu}" >> "$RESULTS"
        for rate in 5000 15000; do
            t0=$(cpu_ticks "$pid")
            json=$(taskset -c 1 "$RATE" rate --target "127.0.0.1:$port" --rate "$rate" --duration "${DURATION}s" --json)
            t1=$(cpu_ticks "$pid")
            python3 - "$proxy" "$rate" "$json" "$t0" "$t1" "$TCK" >> "$RESULTS" <<'PY'
import json, sys
proxy, rate, raw, t0, t1, tck = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
for q in ("p50", "p99", "p999"):
    print(json.dumps({"proxy": proxy, "metric": f"r{rate}_{q}_ms", "value": raw["latency_ms"][q]}))
print(json.dumps({"proxy": proxy, "metric": f"r{rate}_cpu_us", "value": (t1 - t0) * 1e6 / tck / max(raw["requests"], 1)}))
print(json.dumps({"proxy": proxy, "metric": f"r{rate}_errors", "value": raw["errors"]}))
print(json.dumps({"proxy": proxy, "metric": f"r{rate}_lag_p99_ms", "value": raw["send_lag_ms"]["p99"]}))
PY
        done
        # Settle before the baseline, the same wait for every proxy: tether parks its idle
        # backend connections after 1 s and its allocator returns freed pages about 1 s later.
        sleep 3
        echo "{\"proxy\":\"$proxy\",\"metric\":\"rss_idle_kib\",\"value\":$(rss_kib "$pid")}" >> "$RESULTS"
        # serial first: the client connections' own cost, with one or two backend connections;
        # then burst: every request in flight at once, so backend connections are opened too.
        for mode in serial burst; do
            idle=$(rss_kib "$pid")
            coproc HOLD { taskset -c 1 python3 bench/peers/hold.py 127.0.0.1 "$port" 1000 "$mode"; }
            read -r _ <&"${HOLD[0]}"
            # Read after 2 s idle (past tether's idle_release of 1 s) and again after 5 s (past
            # its allocator's one-second decay too), the same waits for every proxy.
            sleep 2
            held2=$(rss_kib "$pid")
            sleep 3
            held5=$(rss_kib "$pid")
            echo >&"${HOLD[1]}"; wait "$HOLD_PID" 2>/dev/null || true
            echo "{\"proxy\":\"$proxy\",\"metric\":\"rss_per_conn_${mode}_kib\",\"value\":$(awk -v h="$held2" -v i="$idle" 'BEGIN { printf "%.3f", (h - i) / 1000 }')}" >> "$RESULTS"
            echo "{\"proxy\":\"$proxy\",\"metric\":\"rss_per_conn_${mode}_5s_kib\",\"value\":$(awk -v h="$held5" -v i="$idle" 'BEGIN { printf "%.3f", (h - i) / 1000 }')}" >> "$RESULTS"
            sleep 2  # the connections are closed; let the proxy settle before the next reading
        done
    done
done

python3 bench/peers/summarize.py "$RESULTS"
