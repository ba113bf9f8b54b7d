#!/usr/bin/python3
"""A small registry token server, the flow Docker Hub, GHCR and quay use.

Usage: token_server.py PORT KEY.pem CERT.pem USER PASS

GET /token?service=S&scope=repository:NAME:ACTIONS with Basic USER:PASS grants what is asked;
without credentials it grants pull only; wrong credentials get 401. POST /token with
grant_type=refresh_token and refresh_token=refresh-USER (an identity token) grants the same.
Tokens are ES256 JWTs with the certificate in the x5c header, which the registry trusts.
"""
import base64
import json
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

port, key_path, cert_path, user, password = sys.argv[1:6]
key = serialization.load_pem_private_key(open(key_path, "rb").read(), password=None)
cert = x509.load_pem_x509_certificate(open(cert_path, "rb").read())
x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]


def grant(scopes, who):
    access = []
    for scope in scopes:
        for one in scope.split(" "):
            parts = one.split(":")
            if len(parts) != 3:
                continue
            kind, name, actions = parts
            wanted = actions.split(",")
            allowed = wanted if who else [a for a in wanted if a == "pull"]
            access.append({"type": kind, "name": name, "actions": allowed})
    now = int(time.time())
    claims = {"iss": "test-issuer", "sub": who or "", "aud": "test-registry", "exp": now + 600,
              "nbf": now - 10, "iat": now, "jti": str(uuid.uuid4()), "access": access}
    return jwt.encode(claims, key, algorithm="ES256", headers={"x5c": x5c})


class Handler(BaseHTTPRequestHandler):
    def answer(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        query = parse_qs(urlparse(self.path).query)
        who = None
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            u, _, p = base64.b64decode(header[6:]).decode().partition(":")
            if (u, p) != (user, password):
                return self.answer(401, {"details": "wrong credentials"})
            who = u
        token = grant(query.get("scope", []), who)
        self.answer(200, {"token": token, "access_token": token, "expires_in": 600})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        form = parse_qs(self.rfile.read(length).decode())
        if form.get("grant_type") != ["refresh_token"] or form.get("refresh_token") != ["refresh-" + user]:
            return self.answer(401, {"details": "bad refresh token"})
        token = grant(form.get("scope", [""])[0].split(" "), user)
        self.answer(200, {"access_token": token, "expires_in": 600})

    def log_message(self, fmt, *args):
        sys.stderr.write("token-server: " + fmt % args + "\n")


ThreadingHTTPServer(("127.0.0.1", int(port)), Handler).serve_forever()
