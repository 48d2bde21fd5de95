#!/usr/bin/env bash
# Side-by-side benchmark of tether, HAProxy and nginx on this machine.
#
# Method: two identical nginx backends and the load generators share the cores the proxies do
# not use; each proxy runs with THREADS workers/threads pinned to cores 0..THREADS-1, all with
# equivalent settings (round robin over the same two backends, keep-alive upstream, no access
# log, the same three X-Forwarded-* headers added to each request). tether runs twice:
#   - `tether`: bench/peers/tether-default.toml, tether's defaults for everything that is not a
#     behaviour all three proxies are set up alike for (threads, listener, pool, backends);
#     this is the configuration the README's claim is about;
#   - `tether-tuned`: bench/peers/tether.toml, which also sets max_idle_per_backend = 256,
#     retry_idempotent = false, passive failures = 0, max_connections = 20000, min_body_rate = 0.
# Runs are interleaved (tether, tether-tuned, haproxy, nginx, tether, ...) and each figure is the
# median of the repeats, with the min-max range. Metrics per proxy:
#   - saturation: wrk -tG -c(64 x THREADS) for DURATION seconds (G: the cores left to the
#     generators and backends): requests/s and the proxy's CPU time per request (utime+stime from
#     /proc/PID/stat over the run, summed over nginx's workers, divided by requests);
#   - fixed rates (5k and 15k req/s): `tether-bench rate`, latency from the intended send time
#     (p50/p99/p99.9) and CPU per request at that rate;
#   - memory: RSS idle, and the growth with 1000 idle keep-alive client connections (each served
#     one request, then read after 2 s and after 5 s idle), opened one after another (`serial`:
#     the client connections' own cost) and all at once (`burst`: the proxy also opens backend
#     connections for the requests in flight, and keeps some of them).
# It reports; it never fails on the numbers.
#
# Threads: THREADS=N gives tether `threads = N` (both configs are copied into the work dir with
# the `threads` value replaced; the tuned copy also listens on 9250 so that both run at once),
# nginx `worker_processes N` and HAProxy `nbthread N`, pins the proxies to cores 0..N-1 and the
# backends (one nginx worker per remaining core), wrk (one thread per remaining core) and the
# other generators to cores N..nproc-1. It refuses (exit 2) a machine with fewer than N+1 cores.
# The default, THREADS=1 on a 2-core machine, is the setup bench/RESULTS.md was recorded with.
# On a bigger host, give the generators and backends at least as many cores as the proxies,
# e.g. on an 8-core machine:
#     bench/peers/run.sh 3 8 4      # proxies on cores 0-3; backends, wrk -t4 -c256 on 4-7
# (`tether-bench rate` is one process for one core; at THREADS > 1 its fixed rates measure
# latency under light load, not the proxies' scaling.)
#
# Build: the `profiling` profile (Cargo.toml: the release profile plus limited debug info), so that
# perf or callgrind can be pointed at the proxy under test with symbols and source lines. The
# code is the release build's; shipped release binaries only lack the debug information.
# bench/RESULTS.md was recorded with exactly this configuration (then `[profile.release]
# debug = 1`).
#
# Usage: bench/peers/run.sh [REPEATS] [DURATION_SECONDS] [THREADS]     (defaults 3, 8 and 1)
set -euo pipefail
cd "$(dirname "$0")/../.."
REPEATS=${1:-3}
DURATION=${2:-8}
THREADS=${3:-1}
for arg in "$REPEATS" "$DURATION" "$THREADS"; do
    case $arg in ''|*[!0-9]*|0) echo "usage: $0 [REPEATS] [DURATION_SECONDS] [THREADS] (positive integers)" >&2; exit 2;; esac
done
CORES=$(nproc)
if [ "$CORES" -lt $((THREADS + 1)) ]; then
    echo "THREADS=$THREADS needs at least $((THREADS + 1)) cores ($THREADS for the proxies, one or more for the backends and load generators); this machine has $CORES" >&2
    exit 2
fi
PROXY_CPUS="0-$((THREADS - 1))"
GEN_CPUS="$THREADS-$((CORES - 1))"
GEN_CORES=$((CORES - THREADS))
WRK_CONNS=$((64 * THREADS))
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
PORTS="9101 9102 9200 9250 9300 9400"
for port in $PORTS; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is in use; stop what listens there first" >&2; exit 2
    fi
done

# The configurations for THREADS, generated from the checked-in ones into the work dir.
gen() {  # gen SRC DST SED-EXPRESSION...; the greps below check that each one took
    local src=$1 dst=$2; shift 2
    local args=(); for e in "$@"; do args+=(-e "$e"); done
    sed -E "${args[@]}" "$src" > "$dst"
}
gen bench/peers/tether-default.toml "$WORK/tether-default.toml" "s/^threads = [0-9]+\$/threads = $THREADS/"
gen bench/peers/tether.toml "$WORK/tether-tuned.toml" "s/^threads = [0-9]+\$/threads = $THREADS/" \
    's/^listen = "127\.0\.0\.1:9200"/listen = "127.0.0.1:9250"/'
gen bench/peers/haproxy.cfg "$WORK/haproxy.cfg" "s/^( *)nbthread [0-9]+\$/\1nbthread $THREADS/"
gen bench/peers/nginx-proxy.conf "$WORK/nginx-proxy.conf" "s/^worker_processes [0-9]+;/worker_processes $THREADS;/"
gen bench/peers/backend-nginx.conf "$WORK/backend-nginx.conf" "s/^worker_processes [0-9]+;/worker_processes $GEN_CORES;/"
grep -q "^threads = $THREADS\$" "$WORK/tether-default.toml" && grep -q "^threads = $THREADS\$" "$WORK/tether-tuned.toml" \
    && grep -q '^listen = "127.0.0.1:9250"' "$WORK/tether-tuned.toml" && grep -q "nbthread $THREADS\$" "$WORK/haproxy.cfg" \
    && grep -q "^worker_processes $THREADS;" "$WORK/nginx-proxy.conf" && grep -q "^worker_processes $GEN_CORES;" "$WORK/backend-nginx.conf" \
    || { echo "could not set the thread counts in the generated configs (in $WORK)" >&2; exit 2; }

cargo build --profile profiling -q -p tether -p tether-bench
TETHER=target/profiling/tether
RATE=target/profiling/tether-bench

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

taskset -c "$GEN_CPUS" nginx -c "$WORK/backend-nginx.conf" & pids+=($!)
RUST_LOG=warn taskset -c "$PROXY_CPUS" "$TETHER" run -c "$WORK/tether-default.toml" & pids+=($!); TETHER_PID=$!
RUST_LOG=warn taskset -c "$PROXY_CPUS" "$TETHER" run -c "$WORK/tether-tuned.toml" & pids+=($!); TUNED_PID=$!
taskset -c "$PROXY_CPUS" haproxy -f "$WORK/haproxy.cfg" -db & pids+=($!); HAPROXY_PID=$!
taskset -c "$PROXY_CPUS" nginx -c "$WORK/nginx-proxy.conf" & pids+=($!); NGINX_MASTER=$!
for port in $PORTS; do
    for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && break; sleep 0.1; done
done
for _ in $(seq 100); do [ "$(pgrep -P "$NGINX_MASTER" | wc -l)" -ge "$THREADS" ] && break; sleep 0.1; done
NGINX_PIDS=$(pgrep -P "$NGINX_MASTER" | tr '\n' ' ')  # the proxy's workers (not the master)
declare -A PID=([tether]=$TETHER_PID [tether-tuned]=$TUNED_PID [haproxy]=$HAPROXY_PID [nginx]="$NGINX_PIDS")
declare -A PORT=([tether]=9200 [tether-tuned]=9250 [haproxy]=9300 [nginx]=9400)
echo "THREADS=$THREADS: proxies on cores $PROXY_CPUS; backends ($GEN_CORES nginx workers) and generators (wrk -t$GEN_CORES -c$WRK_CONNS) on $GEN_CPUS" >&2

# Both sum over the PIDs given (nginx's workers; one PID for the others, whose threads
# /proc/PID/stat already sums).
cpu_ticks() { local p; for p in "$@"; do cat "/proc/$p/stat"; done | awk '{t += $14 + $15} END {print t}'; }
rss_kib() { local p; for p in "$@"; do cat "/proc/$p/status"; done | awk '/VmRSS/ {k += $2} END {print k}'; }
TCK=$(getconf CLK_TCK)

for r in $(seq "$REPEATS"); do
    for proxy in tether tether-tuned haproxy nginx; do
        pid=${PID[$proxy]}; port=${PORT[$proxy]}
        echo "repeat $r/$REPEATS: $proxy" >&2
        t0=$(cpu_ticks $pid)
        out=$(taskset -c "$GEN_CPUS" wrk -t"$GEN_CORES" -c"$WRK_CONNS" -d"${DURATION}s" "http://127.0.0.1:$port/")
        t1=$(cpu_ticks $pid)
        reqs=$(echo "$out" | awk '/requests in/ {print $1}')
        rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
        cpu=$(awk -v a="$t0" -v b="$t1" -v t="$TCK" -v n="$reqs" 'BEGIN { printf "%.3f", (b - a) * 1000000 / t / n }')
        echo "{\"proxy\":\"$proxy\",\"metric\":\"sat_rps\",\"value\":$rps}" >> "$RESULTS"
        echo "{\"proxy\":\"$proxy\",\"metric\":\"sat_cpu_us\",\"value\":$cpu}" >> "$RESULTS"
        for rate in 5000 15000; do
            t0=$(cpu_ticks $pid)
            json=$(taskset -c "$GEN_CPUS" "$RATE" rate --target "127.0.0.1:$port" --rate "$rate" --duration "${DURATION}s" --json)
            t1=$(cpu_ticks $pid)
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
        echo "{\"proxy\":\"$proxy\",\"metric\":\"rss_idle_kib\",\"value\":$(rss_kib $pid)}" >> "$RESULTS"
        # serial first: the client connections' own cost, with one or two backend connections;
        # then burst: every request in flight at once, so backend connections are opened too.
        for mode in serial burst; do
            idle=$(rss_kib $pid)
            coproc HOLD { taskset -c "$GEN_CPUS" python3 bench/peers/hold.py 127.0.0.1 "$port" 1000 "$mode"; }
            read -r _ <&"${HOLD[0]}"
            # Read after 2 s idle (past tether's idle_release of 1 s) and again after 5 s (past
            # its allocator's one-second decay too), the same waits for every proxy.
            sleep 2
            held2=$(rss_kib $pid)
            sleep 3
            held5=$(rss_kib $pid)
            echo >&"${HOLD[1]}"; wait "$HOLD_PID" 2>/dev/null || true
            echo "{\"proxy\":\"$proxy\",\"metric\":\"rss_per_conn_${mode}_kib\",\"value\":$(awk -v h="$held2" -v i="$idle" 'BEGIN { printf "%.3f", (h - i) / 1000 }')}" >> "$RESULTS"
            echo "{\"proxy\":\"$proxy\",\"metric\":\"rss_per_conn_${mode}_5s_kib\",\"value\":$(awk -v h="$held5" -v i="$idle" 'BEGIN { printf "%.3f", (h - i) / 1000 }')}" >> "$RESULTS"
            sleep 2  # the connections are closed; let the proxy settle before the next reading
        done
    done
done

python3 bench/peers/summarize.py "$RESULTS"
