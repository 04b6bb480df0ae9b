#!/usr/bin/env python3
"""A user-space link emulator: a TCP relay that adds one-way delay and a per-connection
bandwidth cap, for kernels built without the `netem` and `fq` qdiscs.

bench/run.sh uses it only when `tc qdisc add … netem` / `fq` are refused (this is the case
on kernels with CONFIG_NET_SCH_NETEM / CONFIG_NET_SCH_FQ unset). It listens on the
root-namespace end of the benchmark's veth pair and relays to the registry on loopback, so
the client in the namespace sees, per TCP connection:

  * a handshake that costs one round trip before the first request byte moves on,
  * every byte delayed by DELAY one way in each direction (RTT = 2 x DELAY),
  * registry -> client bytes serialised at RATE per connection through a small bottleneck
    buffer: departure = max(arrival, previous departure) + size / RATE, delivered at
    departure + DELAY. Reading from the registry stops while that buffer is full, so the
    sender is held back the way a real bottleneck holds it back.

Several connections each get the full RATE (that is the point: a per-flow cap, like
`fq maxrate`, not a link cap like `tbf`). Stdlib only; it stops on SIGTERM/SIGINT.
"""

import argparse
import asyncio
import signal

SLICE = 64 * 1024  # bytes serialised per pacing step: ~5 ms at 100 Mbit/s


def parse_hostport(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


class Link:
    def __init__(self, delay, rate, buffer_bytes):
        self.delay = delay  # seconds, one way
        self.rate = rate  # bytes per second per connection (0: unlimited)
        self.buffer_bytes = buffer_bytes

    async def handle(self, client_reader, client_writer, upstream):
        # The TCP handshake: the client may send at once (the kernel accepted for us), but
        # on a real link its first byte moves only after SYN / SYN-ACK: one round trip.
        await asyncio.sleep(2 * self.delay)
        try:
            up_reader, up_writer = await asyncio.open_connection(*upstream)
        except OSError:
            client_writer.close()
            return
        tasks = [
            asyncio.ensure_future(self.pump(client_reader, up_writer, rate=0)),
            asyncio.ensure_future(self.pump(up_reader, client_writer, rate=self.rate)),
        ]
        try:
            await asyncio.gather(*tasks)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for t in tasks:
                t.cancel()
            for w in (client_writer, up_writer):
                try:
                    w.close()
                except OSError:
                    pass

    async def pump(self, reader, writer, rate):
        """Copy reader -> writer with delay (and pacing when rate > 0)."""
        loop = asyncio.get_running_loop()
        # Bytes waiting to depart sit in the bottleneck buffer; bytes that departed are
        # "on the wire" for DELAY and take no buffer space (as on a real link).
        room = asyncio.Semaphore(max(1, self.buffer_bytes // SLICE))
        in_flight = int(rate * self.delay / SLICE) if rate else 64
        queue = asyncio.Queue(maxsize=in_flight + self.buffer_bytes // SLICE + 16)

        async def receive():
            departure = 0.0
            while True:
                await room.acquire()  # the bottleneck buffer is full: stop reading
                data = await reader.read(SLICE)
                now = loop.time()
                if not data:
                    await queue.put((now + self.delay, None))
                    return
                departure = max(now, departure) + (len(data) / rate if rate else 0.0)
                loop.call_at(departure, room.release)
                await queue.put((departure + self.delay, data))

        receiver = asyncio.ensure_future(receive())
        try:
            while True:
                deliver_at, data = await queue.get()
                wait = deliver_at - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
        finally:
            receiver.cancel()


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT to accept on")
    parser.add_argument("--upstream", required=True, help="HOST:PORT to relay to")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="one-way delay")
    parser.add_argument("--rate-mbit", type=float, default=100.0, help="per-connection cap, 0: none")
    parser.add_argument("--buffer-kib", type=int, default=256, help="bottleneck buffer per connection")
    args = parser.parse_args()

    link = Link(args.delay_ms / 1000.0, args.rate_mbit * 1e6 / 8, args.buffer_kib * 1024)
    upstream = parse_hostport(args.upstream)
    host, port = parse_hostport(args.listen)
    server = await asyncio.start_server(
        lambda r, w: link.handle(r, w, upstream), host, port, reuse_address=True
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
