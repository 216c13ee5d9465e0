"""The API server's door on the real node's bridge: a TCP relay from ``<bridge ip>:6443`` to the
API server on loopback, so that pods (CoreDNS, later the operator) reach it through the
``kubernetes`` Service while the API server itself keeps listening on loopback only.  Bytes are
relayed untouched (TLS end to end: the client checks the API server's own certificate).

    python -m yunshang.dev.door --listen 10.244.0.1:6443 --to 127.0.0.1:34567
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One direction; at its end, half-close (the other direction may still be answering)."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def serve(listen: tuple[str, int], target: tuple[str, int]) -> None:
    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*target)
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()

    server = await asyncio.start_server(relay, *listen, reuse_address=True)
    async with server:
        await server.serve_forever()


def _addr(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m yunshang.dev.door", description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", required=True, type=_addr, help="address:port to listen on (the bridge's)")
    p.add_argument("--to", required=True, type=_addr, help="the API server's address:port (loopback)")
    args = p.parse_args(argv)
    asyncio.run(serve(args.listen, args.to))


if __name__ == "__main__":
    main()
