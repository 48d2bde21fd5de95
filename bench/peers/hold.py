#!/usr/bin/env python3
"""Opens N keep-alive connections to a proxy, sends one request on each, then holds them idle
until stdin closes or a line arrives; prints 'ready' once every connection has its response.

Mode `burst` (the default) sends all N requests before reading any response, so the proxy also
opens many backend connections; `serial` waits for each response before opening the next
connection, so the backend connections stay few and the growth is the client connections'."""
import socket
import sys

target_host, target_port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
mode = sys.argv[4] if len(sys.argv) > 4 else "burst"
if mode not in ("burst", "serial"):
    sys.exit(f"unknown mode {mode!r}: burst or serial")
request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


def read_head(s):
    s.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("the proxy closed a connection before its response")
        data += chunk


conns = []
for _ in range(n):
    s = socket.create_connection((target_host, target_port))
    s.sendall(request)
    conns.append(s)
    if mode == "serial":
        read_head(s)
if mode == "burst":
    for s in conns:
        read_head(s)
print("ready", flush=True)
sys.stdin.readline()
