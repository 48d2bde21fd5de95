#!/usr/bin/env python3
"""notes: a tiny note-taking service for the tether affinity lab (Python standard library only).

Each session keeps a list of notes. With --sessions memory they live in this process's memory
(lost when it dies, invisible to its peers); with --sessions redis they live in Redis, spoken to
with a few lines of RESP over a socket, so every instance sees every session.

  POST /login   new session: sets the `sid` cookie
  POST /notes   appends the request body to the session's notes (401 without a known session)
  GET  /notes   the session's notes, one per line (401 without a known session)
  GET  /healthz ok
Every response carries x-backend-id (the --id it was started with).
"""

import argparse
import http.server
import os
import secrets
import socket
import socketserver
import sys
import threading
from urllib.parse import urlparse

SESSION_TTL = 3600


class MemoryStore:
    """Sessions in this process's memory."""

    def __init__(self):
        self.lock = threading.Lock()
        self.notes = {}

    def create(self, sid):
        with self.lock:
            self.notes[sid] = []

    def append(self, sid, note):
        with self.lock:
            if sid not in self.notes:
                return False
            self.notes[sid].append(note)
            return True

    def read(self, sid):
        with self.lock:
            notes = self.notes.get(sid)
            return None if notes is None else list(notes)


class RedisStore:
    """Sessions in Redis: one connection per thread, RESP by hand."""

    def __init__(self, url):
        u = urlparse(url)
        if u.scheme != "redis" or not u.port:
            sys.exit(f"notes: --redis {url!r}: expected redis://HOST:PORT")
        self.addr = (u.hostname or "127.0.0.1", u.port)
        self.local = threading.local()

    def _call(self, *args):
        for attempt in range(2):
            try:
                return self._call_once(args)
            except (OSError, ConnectionError):
                self.local.conn = None
                if attempt == 1:
                    raise
        return None

    def _call_once(self, args):
        conn = getattr(self.local, "conn", None)
        if conn is None:
            sock = socket.create_connection(self.addr, timeout=5)
            conn = self.local.conn = (sock, sock.makefile("rb"))
        sock, reader = conn
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        sock.sendall(b"".join(out))
        return self._reply(reader)

    def _reply(self, reader):
        line = reader.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind in (b"+", b":"):
            return int(rest) if kind == b":" else rest
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else reader.read(n + 2)[:-2]
        if kind == b"*":
            return [self._reply(reader) for _ in range(max(int(rest), 0))]
        raise ConnectionError(f"bad RESP reply {line!r}")

    def create(self, sid):
        self._call("SET", f"session:{sid}", "1", "EX", SESSION_TTL)

    def append(self, sid, note):
        if not self._call("EXISTS", f"session:{sid}"):
            return False
        self._call("RPUSH", f"notes:{sid}", note)
        self._call("EXPIRE", f"notes:{sid}", SESSION_TTL)
        return True

    def read(self, sid):
        if not self._call("EXISTS", f"session:{sid}"):
            return None
        return [n.decode() for n in self._call("LRANGE", f"notes:{sid}", 0, -1)]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the lab's users and tether expect
    # Headers and body leave in separate writes: with Nagle on, the body would wait for the
    # client's delayed ACK (40 ms on Linux).
    disable_nagle_algorithm = True
    store = None
    backend_id = "notes"

    def log_message(self, *args):  # quiet: one line per request would flood the lab's logs
        pass

    def _send(self, status, body="", cookie=None):
        data = body.encode()
        self.send_response(status)
        self.send_header("content-type", "text/plain; charset=utf-8")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-backend-id", self.backend_id)
        if cookie:
            self.send_header("set-cookie", f"sid={cookie}; Path=/; HttpOnly")
        self.end_headers()
        self.wfile.write(data)

    def _sid(self):
        for part in self.headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == "sid":
                return value
        return None

    def _body(self):
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n).decode(errors="replace") if n else ""

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/healthz":
            return self._send(200, "ok\n")
        if path == "/notes":
            notes = self.store.read(self._sid() or "")
            if notes is None:
                return self._send(401, "no session\n")
            return self._send(200, "".join(n + "\n" for n in notes))
        self._send(404, "not found\n")

    def do_POST(self):
        path = self.path.split("?")[0]
        body = self._body()
        if path == "/login":
            sid = secrets.token_hex(16)
            self.store.create(sid)
            return self._send(200, "welcome\n", cookie=sid)
        if path == "/notes":
            if not self.store.append(self._sid() or "", body):
                return self._send(401, "no session\n")
            return self._send(201, "saved\n")
        self._send(404, "not found\n")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # a restart binds the same port at once


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--id", default=f"notes-{os.getpid()}")
    p.add_argument("--sessions", choices=["memory", "redis"], default="memory")
    p.add_argument("--redis", default=os.environ.get("STORE_URL", ""),
                   help="redis://HOST:PORT (default: $STORE_URL)")
    a = p.parse_args()
    if a.sessions == "redis":
        if not a.redis:
            sys.exit("notes: --sessions redis needs --redis URL or STORE_URL")
        Handler.store = RedisStore(a.redis)
    else:
        Handler.store = MemoryStore()
    Handler.backend_id = a.id
    server = Server((a.host, a.port), Handler)
    print(f"notes {a.id}: listening on {a.host}:{a.port}, sessions in {a.sessions}",
          file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
