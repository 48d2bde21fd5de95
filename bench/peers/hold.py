#!/usr/bin/env python3
"""Opens N keep-alive connections to a proxy, sends one request on each, then holds them idle
until stdin closes or a line arrives; prints 'ready' once every connection has its response."""
import socket
import sys

target_host, target_port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
conns = []
request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
for _ in range(n):
    s = socket.create_connection((target_host, target_port))
    s.sendall(request)
    conns.append(s)
for s in conns:
    s.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
print("ready", flush=True)
sys.stdin.readline()
