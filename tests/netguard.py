"""What a unit test may connect to (issue 30.5): nothing but a loopback port that the test's own
process (or a process it started) listens on, or a loopback port that nobody listens on (a refusal
the test expects).  Anything else — a user's local platform still in their kubeconfig, a cluster,
another host — is a unit test reaching outside itself.

``Guard`` patches the socket layer for one test, records every such attempt (the code under test
may swallow the exception it raises: the record is what fails the test) and refuses it."""
from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import pytest


class NetworkUsed(ConnectionRefusedError):
    """A unit test tried to open a network connection it does not own.  A ConnectionRefusedError, so
    that the code under test takes the path it takes for an unreachable server."""


def _listening_inodes(port: int) -> set[str]:
    """Inodes of the sockets listening on ``port`` (TCP, v4 and v6)."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                out.add(f[9])
    return out


def _family(pid: int) -> set[int]:
    """``pid`` and its descendants."""
    children: dict[int, list[int]] = {}
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        out.add(p)
        todo += children.get(p, [])
    return out


def socket_inodes(pids) -> set[str]:
    """Inodes of the sockets the processes ``pids`` hold open."""
    out = set()
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                out.add(target[8:-1])
    return out


def why_not(address) -> str:
    """Empty if a unit test may connect to ``address``, else why not."""
    if not isinstance(address, tuple):
        return ""  # a Unix socket: a file the test made
    host, port = address[0], address[1]
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return f"{host}:{port} is not this machine's loopback"
    listeners = _listening_inodes(port)
    if not listeners:
        return ""  # nobody listens: the refusal the test expects
    if listeners & socket_inodes(_family(os.getpid())):
        return ""  # the test's own server
    return f"{host}:{port} is a server this test did not start (a user's platform, another run's)"


class Guard:
    """Patches ``socket.socket.connect``/``connect_ex`` through ``monkeypatch`` for one test."""

    def __init__(self, monkeypatch):
        self.attempts: list[str] = []
        real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
        guard = self

        def connect(sock, address):
            guard.check(sock, address)
            return real_connect(sock, address)

        def connect_ex(sock, address):
            guard.check(sock, address)
            return real_connect_ex(sock, address)

        monkeypatch.setattr(socket.socket, "connect", connect)
        monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)

    def check(self, sock, address) -> None:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return
        why = why_not(address)
        if why:
            self.attempts.append(why)
            raise NetworkUsed(f"a unit test opened a network connection: {why}")


def unit_guard(monkeypatch):
    """The body of the unit tests' autouse fixture (tests/conftest.py): the code under test may
    swallow the refusal (a warning, a retry), so the record fails the test."""
    guard = Guard(monkeypatch)
    yield guard
    if guard.attempts:
        pytest.fail("a unit test reached outside itself: " + "; ".join(dict.fromkeys(guard.attempts)), pytrace=False)
