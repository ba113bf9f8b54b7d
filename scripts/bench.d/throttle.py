#!/usr/bin/env python3
"""A bandwidth-limited reverse proxy for scripts/bench: what a CDN's bandwidth looks like to a CI
runner, in front of a loopback server.

    throttle.py UPSTREAM_PORT LISTEN_PORT MB_PER_S

Listens on 127.0.0.1:LISTEN_PORT and relays every connection to 127.0.0.1:UPSTREAM_PORT, one
upstream connection per client connection, bytes passed through unchanged both ways: keep-alive,
`Range`, chunked bodies and anything else of HTTP reach the server and come back as it sent them.
The bytes towards the clients go through one token bucket shared by all connections, so 8
parallel downloads share MB_PER_S (10^6 bytes a second) between them; requests are not limited.
The bucket allows a burst of 50 ms worth of bytes; each connection takes at most 64 KiB at a time,
so the connections waiting for the bucket are served in turn.
"""
import asyncio
import sys
import time

CHUNK = 64 * 1024


class Bucket:
    """A token bucket as a schedule: `t` is when the bytes granted so far have all been paid for."""

    def __init__(self, rate, burst_s=0.05):
        self.rate = rate
        self.burst_s = burst_s
        self.t = time.monotonic()

    async def take(self, n):
        now = time.monotonic()
        self.t = max(self.t, now - self.burst_s) + n / self.rate
        if self.t > now:
            await asyncio.sleep(self.t - now)


async def pump(reader, writer, bucket=None):
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            if bucket is not None:
                await bucket.take(len(data))
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.write_eof()
        except (OSError, RuntimeError):
            writer.close()


async def relay(bucket, upstream_port, client_r, client_w):
    try:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", upstream_port, limit=4 * CHUNK)
    except OSError:
        client_w.close()
        return
    await asyncio.gather(pump(client_r, up_w), pump(up_r, client_w, bucket))
    for w in (up_w, client_w):
        w.close()


async def main():
    upstream_port, port, mb_per_s = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    bucket = Bucket(mb_per_s * 1e6)
    server = await asyncio.start_server(
        lambda r, w: relay(bucket, upstream_port, r, w), "127.0.0.1", port, limit=4 * CHUNK)
    async with server:
        await server.serve_forever()


asyncio.run(main())
