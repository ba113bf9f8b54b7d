#!/usr/bin/env python3
"""A static file server for scripts/bench, shaped like a CDN's origin: HTTP/1.1 with keep-alive,
single `Range: bytes=A-B` requests (206 + Content-Range), and sendfile for the bodies.

    serve.py DIR PORT

Serves DIR on 127.0.0.1:PORT, one thread per connection; the access log goes to stderr in
`python3 -m http.server`'s format. (`python3 -m http.server` itself speaks HTTP/1.0, closing
every connection, and ignores `Range`.)
"""
import http.server
import os
import re
import sys

RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once, not after a delayed ACK

    def send_head(self):
        self.span = None
        path = self.translate_path(self.path)
        want = self.headers.get("Range")
        if want is None or not os.path.isfile(path):
            return super().send_head()
        m = RANGE.match(want.strip())
        size = os.path.getsize(path)
        if not m or (m[1] == "" and m[2] == ""):
            return super().send_head()
        if m[1] == "":
            first, last = max(0, size - int(m[2])), size - 1
        else:
            first, last = int(m[1]), min(size - 1, int(m[2])) if m[2] else size - 1
        if first >= size or first > last:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        f = open(path, "rb")
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.send_header("Content-Length", str(last - first + 1))
        self.span = (first, last - first + 1)
        self.end_headers()
        return f

    def copyfile(self, source, outputfile):
        if not hasattr(source, "raw"):  # a directory listing (BytesIO)
            return super().copyfile(source, outputfile)
        self.wfile.flush()
        if self.span is not None:
            offset, count = self.span
        else:
            offset, count = 0, os.fstat(source.fileno()).st_size
        out = self.connection.fileno()
        while count > 0:
            sent = os.sendfile(out, source.fileno(), offset, min(count, 1 << 24))
            if sent == 0:
                break
            offset += sent
            count -= sent

    def end_headers(self):
        if self.command in ("GET", "HEAD"):
            self.send_header("Accept-Ranges", "bytes")
        super().end_headers()


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 drops the SYNs of 8 parallel connects (1 s retries)


def main():
    root, port = sys.argv[1], int(sys.argv[2])
    os.chdir(root)
    server = Server(("127.0.0.1", port), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
