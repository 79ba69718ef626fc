"""A slow link in user space: a TCP relay that adds latency, and retransmission stalls for loss.

This kernel has no ``sch_netem``, so ``tc netem delay/loss`` cannot be used; the relay stands in
for it on one host's path to Redis (``kqueue.ops.netns``). Every chunk read from either side is
delivered ``delay_s`` later, in order; with probability ``loss`` a chunk is delayed a further
``stall_s``, which is what a lost TCP segment costs the application (the sender's
retransmission timeout, 200 ms minimum on Linux): TCP never shows the application a gap, only a
late byte. Run it as ``python -m kqueue.ops.slowlink LISTEN_PORT TARGET_HOST TARGET_PORT
[--delay-ms MS] [--loss P] [--stall-ms MS] [--seed N]``; it listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
from dataclasses import dataclass

CHUNK_BYTES = 65536


@dataclass(frozen=True)
class LinkShape:
    """What the relay does to each chunk: one-way ``delay_s``, ``loss`` chance of ``stall_s``."""

    delay_s: float
    loss: float
    stall_s: float


def release_at(now_s: float, last_s: float, shape: LinkShape, rng: random.Random) -> float:
    """When a chunk read at ``now_s`` is passed on: never before the previous one's ``last_s``."""
    extra_s = shape.stall_s if rng.random() < shape.loss else 0.0
    return max(now_s + shape.delay_s + extra_s, last_s)


async def carry(reader, writer, shape: LinkShape, rng: random.Random) -> None:
    """Copy ``reader`` to ``writer``, each chunk held until its release time."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due_s, data = await queue.get()
            if data is None:
                break
            await asyncio.sleep(max(0.0, due_s - loop.time()))
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(deliver())
    last_s = 0.0
    try:
        while data := await reader.read(CHUNK_BYTES):
            last_s = release_at(loop.time(), last_s, shape, rng)
            queue.put_nowait((last_s, data))
        queue.put_nowait((last_s, None))
        await sender
    except (ConnectionError, OSError):
        sender.cancel()
    finally:
        writer.close()


async def serve(listen_port: int, host: str, port: int, shape: LinkShape, seed: int) -> None:
    """Relay every connection to ``127.0.0.1:listen_port`` on to ``host:port``, forever."""
    rng = random.Random(seed)

    async def relay(client_reader, client_writer) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(host, port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            carry(client_reader, server_writer, shape, rng),
            carry(server_reader, client_writer, shape, rng),
            return_exceptions=True,
        )

    server = await asyncio.start_server(relay, "127.0.0.1", listen_port)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and relay until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("listen_port", type=int)
    parser.add_argument("target_host")
    parser.add_argument("target_port", type=int)
    parser.add_argument("--delay-ms", type=float, default=20.0, help="one way, each direction")
    parser.add_argument("--loss", type=float, default=0.02, help="chance a chunk stalls")
    parser.add_argument("--stall-ms", type=float, default=200.0, help="a lost segment's cost")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 0 <= args.loss <= 1 or args.delay_ms < 0 or args.stall_ms < 0:
        parser.error("--loss must be in [0, 1]; --delay-ms and --stall-ms >= 0")
    shape = LinkShape(args.delay_ms / 1000, args.loss, args.stall_ms / 1000)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.listen_port, args.target_host, args.target_port, shape, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
