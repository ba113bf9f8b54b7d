#!/usr/bin/python3
"""A fault-injecting HTTP/1.1 proxy in front of a registry, for tests/network_faults.rs.

Usage: fault_proxy.py LISTEN_PORT UPSTREAM_PORT LOG_FILE [RULE ...]

Each RULE is ACTION:METHOD:PATH_PART[#COUNT]. It applies to requests whose method is METHOD (`*`
for any) and whose path contains PATH_PART, COUNT times (default 1; 0 means every time); the
first rule that matches a request and has uses left is applied. ACTIONs:

  reset-body  forward; send the headers and half the body, then reset the connection (RST)
  drop-reply  forward; read the registry's answer, then close the connection without replying
  swallow     read the request, close the connection without forwarding it
  trickle     forward; send the headers, then the body one byte per second
  trickle-upload  read a request body of more than 64 KiB at 512 bytes/s (through a small
              receive buffer), then forward it; smaller bodies pass as they are
  429         answer 429 Too Many Requests with `Retry-After: 2`, without forwarding
  hold        read the request and never answer (until the client hangs up)
  no-range    forward without the request's Range header (the registry answers 200, whole)

`silent` as the only RULE accepts connections and never answers anything, TLS included.
A TLS ClientHello is otherwise answered by closing the connection, as a plain HTTP server
that does not speak TLS would, so clients fall back to plain HTTP.

Every request is logged to LOG_FILE as `METHOD PATH range=RANGE -> STATUS ACTION`; under
`silent`, every connection as `ACCEPT - range=- -> - silent`.
"""
import http.client
import socket
import socketserver
import struct
import sys
import threading
import time

listen_port, upstream_port, log_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
SILENT = sys.argv[4:] == ["silent"]
RULES = []
for spec in [] if SILENT else sys.argv[4:]:
    action, method, part = spec.split(":", 2)
    part, _, count = part.partition("#")
    RULES.append({"action": action, "method": method, "part": part, "left": int(count or 1) or None})
lock = threading.Lock()
log_file = open(log_path, "a", buffering=1)


def take(method, path, actions):
    """The first rule among `actions` that matches, using one of its uses; else None."""
    with lock:
        for rule in RULES:
            if rule["action"] not in actions or rule["method"] not in (method, "*"):
                continue
            if rule["part"] not in path or rule["left"] == 0:
                continue
            if rule["left"] is not None:
                rule["left"] -= 1
            return rule["action"]
    return None


def log(line):
    with lock:
        log_file.write(f"{time.time():.3f} {line}\n")


def read_request(rfile, slow_body=lambda method, path: False):
    """(method, path, headers, body) or None at the end of the connection; the body is read at
    512 bytes/s when `slow_body(method, path)` says so and it is larger than 64 KiB (the rule
    is used only then). None too when the client hangs up in the middle of the body."""
    first = rfile.peek(1)[:1]
    if not first or first == b"\x16":
        return None
    line = rfile.readline(65536)
    if not line.strip():
        return None
    method, path, _ = line.decode("latin-1").split(" ", 2)
    headers = []
    while True:
        h = rfile.readline(65536)
        if h in (b"\r\n", b"\n", b""):
            break
        name, value = h.decode("latin-1").split(":", 1)
        headers.append((name.strip(), value.strip()))
    names = {n.lower(): v for n, v in headers}
    body = b""
    if names.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int(rfile.readline().split(b";")[0], 16)
            if size == 0:
                while rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                break
            body += rfile.read(size)
            rfile.readline()
        headers = [(n, v) for n, v in headers if n.lower() != "transfer-encoding"]
        headers.append(("Content-Length", str(len(body))))
    elif "content-length" in names:
        size = int(names["content-length"])
        if size > 65536 and slow_body(method, path):
            log(f"{method} {path} range=- -> - trickle-upload of {size} bytes")
            chunks = []
            got = 0
            while got < size:
                chunk = rfile.read1(min(256, size - got))
                if not chunk:
                    log(f"{method} {path} range=- -> - client hung up after {got} bytes")
                    return None
                chunks.append(chunk)
                got += len(chunk)
                time.sleep(0.5)
            body = b"".join(chunks)
        else:
            body = rfile.read(size)
    return method, path, headers, body


def forward(method, path, headers, body):
    conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=120)
    conn.request(method, path, body=body if body or method in ("PUT", "POST", "PATCH") else None,
                 headers=dict(headers))
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp, data


def head_bytes(resp, data, method):
    out = [f"HTTP/1.1 {resp.status} {resp.reason}\r\n"]
    for name, value in resp.getheaders():
        if name.lower() in ("transfer-encoding", "connection", "keep-alive"):
            continue
        if name.lower() == "content-length" and method != "HEAD":
            continue
        out.append(f"{name}: {value}\r\n")
    if method != "HEAD":
        out.append(f"Content-Length: {len(data)}\r\n")
    out.append("\r\n")
    return "".join(out).encode("latin-1")


def reset(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        if SILENT:
            log("ACCEPT - range=- -> - silent")
            while sock.recv(65536):
                pass
            return
        rfile = sock.makefile("rb")
        while True:
            try:
                request = read_request(rfile, lambda m, p: take(m, p, ("trickle-upload",)))
            except (OSError, ValueError):
                return
            if request is None:
                return
            method, path, headers, body = request
            rng = dict((n.lower(), v) for n, v in headers).get("range", "-")
            action = take(method, path, ("reset-body", "drop-reply", "swallow", "trickle", "429", "hold"))
            if take(method, path, ("no-range",)):
                headers = [(n, v) for n, v in headers if n.lower() != "range"]
                action = action or "no-range"
            if action == "swallow":
                log(f"{method} {path} range={rng} -> - swallow")
                sock.close()
                return
            if action == "hold":
                log(f"{method} {path} range={rng} -> - hold")
                while sock.recv(65536):
                    pass
                return
            if action == "429":
                payload = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}'
                log(f"{method} {path} range={rng} -> 429 429")
                sock.sendall(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\n"
                             b"Content-Type: application/json\r\n"
                             + f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
                continue
            resp, data = forward(method, path, headers, body)
            log(f"{method} {path} range={rng} -> {resp.status} {action or ''}".rstrip())
            try:
                if action == "drop-reply":
                    sock.close()
                    return
                head = head_bytes(resp, data, method)
                if action == "reset-body":
                    sock.sendall(head + data[: len(data) // 2])
                    time.sleep(0.05)
                    reset(sock)
                    return
                if action == "trickle":
                    sock.sendall(head)
                    for i in range(len(data)):
                        sock.sendall(data[i : i + 1])
                        time.sleep(1)
                    continue
                sock.sendall(head + (b"" if method == "HEAD" else data))
            except OSError:
                return
            if dict((n.lower(), v) for n, v in headers).get("connection", "").lower() == "close":
                return


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def server_bind(self):
        # A small receive window when uploads trickle, so that the client's socket buffers
        # fill after a few hundred KiB instead of holding the whole body (set before listen,
        # connections inherit it).
        if any(rule["action"] == "trickle-upload" for rule in RULES):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        super().server_bind()


server = Server(("127.0.0.1", listen_port), Handler)
# Listening: LOG_FILE.ready tells the tests so (a test connection would be logged under `silent`).
open(log_path + ".ready", "w").close()
server.serve_forever()
