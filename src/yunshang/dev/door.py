"""The API server's door into a real node: a TCP relay from addresses inside the node's network
namespace (its loopback, for the kubelet, kube-proxy and kube-router; its bridge address, for pods
through the ``kubernetes`` Service) to the API server on the host's loopback, so that the API
server itself keeps listening on loopback only.  The listening sockets are made on a thread moved
into the node's namespace; the connections to the API server from the host's.  Bytes are relayed
untouched (TLS end to end: the client checks the API server's own certificate).

    python -m yunshang.dev.door --netns /run/netns/ysnode0 --listen 127.0.0.1:6443 \\
        --listen 10.244.0.1:6443 --to 127.0.0.1:34567

With ``--reverse`` the other way round, for the API server's own webhooks (audit events) to a Service
in the cluster: listening on the host's loopback, connecting from inside the node (kube-proxy there
turns the Service's ClusterIP into a pod), as a control-plane node's kube-proxy would.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import socket
import threading
from typing import Callable

CLONE_NEWNET = 0x40000000


def in_netns(netns: str, fn: Callable[[], object], timeout: float = 30) -> object:
    """``fn()`` on a thread of this process moved into the network namespace ``netns`` (a path under
    /run/netns; setns is per thread, so the rest of the process stays where it is): the sockets it
    makes belong to that namespace."""
    result: dict[str, object] = {}

    def run() -> None:
        try:
            fd = os.open(netns, os.O_RDONLY)
            try:
                if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {netns}")
            finally:
                os.close(fd)
            result["value"] = fn()
        except BaseException as e:  # noqa: BLE001  (re-raised on the caller's thread)
            result["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result.get("value")


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


def listeners(addresses: list[tuple[str, int]], netns: str | None) -> list[socket.socket]:
    """Listening sockets on ``addresses``, made inside ``netns`` (a path under /run/netns) if given."""
    def make() -> list[socket.socket]:
        out = []
        for host, port in addresses:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
            s.listen(128)
            s.setblocking(False)
            out.append(s)
        return out

    return make() if not netns else in_netns(netns, make)  # type: ignore[return-value]


async def _connect(target: tuple[str, int], netns: str | None):
    """A connection to ``target``, made from inside ``netns`` if given (its socket is created there;
    connected from the loop)."""
    if not netns:
        return await asyncio.open_connection(*target)
    sock = in_netns(netns, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, target)
    except OSError:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock)


async def serve(socks: list[socket.socket], target: tuple[str, int], connect_in: str | None = None) -> None:
    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await _connect(target, connect_in)
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()

    servers = [await asyncio.start_server(relay, sock=s) for s in socks]
    await asyncio.gather(*(srv.serve_forever() for srv in servers))


def _addr(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m yunshang.dev.door", description=__doc__.split("\n\n")[0])
    p.add_argument("--netns", help="the node's network namespace (a path), where the listening sockets are made")
    p.add_argument("--listen", required=True, type=_addr, action="append",
                   help="address:port to listen on (repeatable)")
    p.add_argument("--to", required=True, type=_addr, help="the API server's address:port (the host's loopback)")
    p.add_argument("--reverse", action="store_true",
                   help="the other way: listen on the host, connect from inside --netns (the API server's webhooks "
                        "to a Service of the node: its ClusterIP, through the node's kube-proxy)")
    args = p.parse_args(argv)
    if args.reverse:
        asyncio.run(serve(listeners(args.listen, None), args.to, connect_in=args.netns))
    else:
        asyncio.run(serve(listeners(args.listen, args.netns), args.to))


if __name__ == "__main__":
    main()
