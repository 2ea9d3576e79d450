#!/usr/bin/env python3
"""A TCP proxy on loopback that delays every byte by a fixed time in each direction.

This kernel has no netem qdisc, so link delay for benchmarks is injected here instead: data
read from one side is written to the other `--delay-ms` later, in order (a round trip through
the proxy gains twice the delay). Bytes carried each way are written to `--stats` as JSON once
a second, so a benchmark can count traffic on links nova does not instrument itself.

    delay_proxy.py --listen 127.0.0.1:9001 --to 127.0.0.1:9000 --delay-ms 2 [--stats FILE]

It listens on loopback only, unless it runs in a named network namespace (`ip netns`, as
scripts/bench_split.py makes, joined to another by a veth pair); there it may listen on that
namespace's addresses.
"""

import argparse
import asyncio
import json
import os
import time

CHUNK = 64 * 1024
# Bytes in flight per direction before reading pauses: the proxy's own memory stays bounded.
MAX_IN_FLIGHT = 16 * 1024 * 1024


def in_named_netns():
    """True when this process runs in a network namespace `ip netns` made (one bound under
    /run/netns), not the host's."""
    try:
        me = os.stat("/proc/self/ns/net")
        for name in os.listdir("/run/netns"):
            st = os.stat(os.path.join("/run/netns", name))
            if (st.st_dev, st.st_ino) == (me.st_dev, me.st_ino):
                return True
    except OSError:
        pass
    return False


class Counter:
    def __init__(self):
        self.up = 0
        self.down = 0


async def pump(reader, writer, delay, counter, direction):
    queue = asyncio.Queue()
    in_flight = asyncio.Semaphore(MAX_IN_FLIGHT // CHUNK)

    async def deliver():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
            in_flight.release()
        writer.close()

    sender = asyncio.create_task(deliver())
    try:
        while True:
            await in_flight.acquire()
            data = await reader.read(CHUNK)
            if not data:
                break
            setattr(counter, direction, getattr(counter, direction) + len(data))
            queue.put_nowait((time.monotonic() + delay, data))
    except (ConnectionError, OSError):
        pass
    finally:
        queue.put_nowait((0, None))
        try:
            await sender
        except (ConnectionError, OSError):
            pass


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", required=True,
                    help="127.0.0.1:PORT (in an `ip netns` namespace: any address)")
    ap.add_argument("--to", required=True, help="HOST:PORT to forward to")
    ap.add_argument("--delay-ms", type=float, default=0.0, help="delay each way, ms")
    ap.add_argument("--stats", help="write {\"up\": bytes, \"down\": bytes} here every second")
    args = ap.parse_args()
    lhost, lport = args.listen.rsplit(":", 1)
    if lhost not in ("127.0.0.1", "localhost") and not in_named_netns():
        raise SystemExit("--listen takes a loopback address only (outside a network namespace)")
    thost, tport = args.to.rsplit(":", 1)
    delay = args.delay_ms / 1000.0
    counter = Counter()

    async def handle(creader, cwriter):
        try:
            sreader, swriter = await asyncio.open_connection(thost, int(tport))
        except OSError:
            cwriter.close()
            return
        await asyncio.gather(
            pump(creader, swriter, delay, counter, "up"),
            pump(sreader, cwriter, delay, counter, "down"),
        )

    async def stats():
        while args.stats:
            tmp = args.stats + ".tmp"
            with open(tmp, "w") as f:
                json.dump({"up": counter.up, "down": counter.down}, f)
            os.replace(tmp, args.stats)
            await asyncio.sleep(1)

    server = await asyncio.start_server(handle, lhost, int(lport))
    print(f"proxy {args.listen} -> {args.to} delay {args.delay_ms} ms", flush=True)
    async with server:
        await asyncio.gather(server.serve_forever(), stats())


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
