#!/usr/bin/env python3
"""Prints the peer benchmark's table: median (min-max) per proxy and each tether configuration's
ratio to the better peer (`tether/best` for the defaults, `tuned/best` for tether.toml), from the
JSON lines run.sh wrote. Files from before the two tether configurations (where `tether` was
tether.toml) print with the columns they have."""
import json
import statistics
import sys
from collections import defaultdict

HIGHER_IS_BETTER = {"sat_rps"}
LABELS = [
    ("sat_rps", "requests/s at saturation (wrk -c64)"),
    ("sat_cpu_us", "CPU us per request at saturation"),
    ("r5000_cpu_us", "CPU us per request at 5k req/s"),
    ("r15000_cpu_us", "CPU us per request at 15k req/s"),
    ("r5000_p50_ms", "p50 ms at 5k req/s"),
    ("r5000_p99_ms", "p99 ms at 5k req/s"),
    ("r5000_p999_ms", "p99.9 ms at 5k req/s"),
    ("r15000_p50_ms", "p50 ms at 15k req/s"),
    ("r15000_p99_ms", "p99 ms at 15k req/s"),
    ("r15000_p999_ms", "p99.9 ms at 15k req/s"),
    ("rss_idle_kib", "RSS idle (KiB)"),
    ("rss_per_conn_serial_kib", "RSS/idle client conn, serial, 2 s (KiB)"),
    ("rss_per_conn_serial_5s_kib", "RSS/idle client conn, serial, 5 s (KiB)"),
    ("rss_per_conn_burst_kib", "RSS/idle client conn, burst, 2 s (KiB)"),
    ("rss_per_conn_burst_5s_kib", "RSS/idle client conn, burst, 5 s (KiB)"),
    ("r5000_errors", "errors at 5k req/s"),
    ("r15000_errors", "errors at 15k req/s"),
    ("r5000_lag_p99_ms", "generator send lag p99 at 5k (ms)"),
    ("r15000_lag_p99_ms", "generator send lag p99 at 15k (ms)"),
]

values = defaultdict(list)
for line in open(sys.argv[1]):
    row = json.loads(line)
    values[(row["metric"], row["proxy"])].append(float(row["value"]))

def fmt(x):
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"


def cell(metric, proxy):
    v = values.get((metric, proxy))
    if not v:
        return "-", None
    med = statistics.median(v)
    return f"{fmt(med)} ({fmt(min(v))}-{fmt(max(v))})", med

PEERS = ("haproxy", "nginx")
TETHERS = {"tether": "tether/best", "tether-tuned": "tuned/best"}
present = {p for (_, p) in values}
proxies = [p for p in ("tether", "tether-tuned", *PEERS) if p in present]
ratios = [t for t in TETHERS if t in present]

header = f"{'metric':44}" + "".join(f" {p:>22}" for p in proxies) + "".join(f" {TETHERS[t]:>11}" for t in ratios)
print(header)
for metric, label in LABELS:
    cells = {p: cell(metric, p) for p in proxies}
    peers = [cells[p][1] for p in PEERS if p in cells and cells[p][1] is not None]
    line = f"{label:44}" + "".join(f" {cells[p][0]:>22}" for p in proxies)
    for t in ratios:
        ratio = "-"
        v = cells[t][1]
        if v is not None and peers and "errors" not in metric and "lag" not in metric:
            best = max(peers) if metric in HIGHER_IS_BETTER else min(peers)
            ratio = f"{v / best:.2f}" if best else "-"
        line += f" {ratio:>11}"
    print(line)
