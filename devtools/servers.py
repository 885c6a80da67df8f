"""Throw-away PostgreSQL and Redis servers on 127.0.0.1, each in a temporary folder of its own, and
an HTTP server on a network of its own.

The tests run the search against a real PostgreSQL through these, and the benchmark measures the
Redis channel layer with them; the sandbox's network tests reach the HTTP server as an allowed host. Nothing is installed or left behind: the server stops and its
folder is deleted when the ``with`` block ends. No Django import.
"""

from __future__ import annotations

import os
import pwd
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
REDIS_SERVER = os.environ.get("REDIS_SERVER", "redis-server")


class Unavailable(Exception):
    """The server's programs are not installed; the text says what is missing and how to get it."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(
    port: int, process: subprocess.Popen[bytes], *, log: Path, timeout: float = 30, host: str = "127.0.0.1"
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(
                    f"the server on port {port} did not start:\n{log.read_text(errors='replace')}"
                ) from None
            time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes], *, how: signal.Signals = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(how)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def postgres_available() -> str:
    """Why PostgreSQL cannot be started here ("" when it can)."""
    missing = [name for name in ("initdb", "postgres") if not (PG_BIN / name).exists()]
    if missing:
        return (
            f"the PostgreSQL server programs ({', '.join(missing)}) are not in {PG_BIN}: "
            "scripts/setup --dev installs Debian's postgresql, or set PG_BIN"
        )
    return ""


@contextmanager
def postgres() -> Iterator[str]:
    """A fresh PostgreSQL cluster; yields its URL (superuser ``postgres``, database ``postgres``)."""
    if reason := postgres_available():
        raise Unavailable(reason)
    folder = Path(tempfile.mkdtemp(prefix="chat-pg-"))
    # PostgreSQL refuses to run as root: as root, the cluster belongs to the "postgres" account.
    user = None
    if os.geteuid() == 0:
        user = "postgres"
        try:
            account = pwd.getpwnam(user)
        except KeyError:
            raise Unavailable("running as root, and there is no 'postgres' account to run PostgreSQL as") from None
        os.chown(folder, account.pw_uid, account.pw_gid)
    data, log = folder / "data", folder / "server.log"
    port = free_port()
    try:
        subprocess.run(
            [PG_BIN / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
            check=True,
            capture_output=True,
            user=user,
        )
        with log.open("wb") as out:
            # Durability is not wanted of a throw-away cluster: no fsync keeps it fast.
            process = subprocess.Popen(
                [
                    PG_BIN / "postgres",
                    "-D",
                    data,
                    "-p",
                    str(port),
                    "-k",
                    folder,
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                user=user,
            )
        try:
            _wait_for_port(port, process, log=log)
            _wait_until_accepting(port, process, log=log)
            yield f"postgres://postgres@127.0.0.1:{port}/postgres"
        finally:
            _stop(process, how=signal.SIGINT)  # PostgreSQL's "fast" shutdown
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _wait_until_accepting(port: int, process: subprocess.Popen[bytes], *, log: Path, timeout: float = 30) -> None:
    """The port opens while the cluster still starts up; ask pg_isready until it answers."""
    deadline = time.monotonic() + timeout
    while subprocess.run([PG_BIN / "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port)]).returncode != 0:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"PostgreSQL did not get ready:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)


def redis_available() -> str:
    if shutil.which(REDIS_SERVER) is None:
        return f"{REDIS_SERVER} is not installed: scripts/setup --dev installs Debian's redis-server"
    return ""


@contextmanager
def redis() -> Iterator[str]:
    """A fresh Redis with nothing saved to disk; yields its URL."""
    if reason := redis_available():
        raise Unavailable(reason)
    folder = Path(tempfile.mkdtemp(prefix="chat-redis-"))
    port = free_port()
    log = folder / "server.log"
    try:
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    REDIS_SERVER,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(folder),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--protected-mode",
                    "yes",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_for_port(port, process, log=log)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            _stop(process)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def netns_available() -> str:
    """Why a server in a network namespace of its own cannot be started here ("" when it can)."""
    if os.geteuid() != 0:
        return "a network namespace and a veth pair need root"
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed: apt-get install iproute2"
    return ""


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True)


@contextmanager
def outside_http(folder: Path) -> Iterator[str]:
    """An HTTP server of ``folder`` on an address that is neither loopback nor one of this machine's:
    in a network namespace of its own, reached over a veth pair on 10.213.N.0/30 (as a host on the
    company's network would be); yields its URL, ``http://10.213.N.2:8080``."""
    if reason := netns_available():
        raise Unavailable(reason)
    tag = secrets.token_hex(4)
    namespace, outer, inner = f"egress-{tag}", f"eg{tag}o", f"eg{tag}i"
    taken = _ip("-4", "-o", "addr").stdout
    subnet = next(n for n in random.sample(range(1, 255), 254) if f" 10.213.{n}." not in taken)
    near, far = f"10.213.{subnet}.1", f"10.213.{subnet}.2"
    log = folder.parent / f"{folder.name}-server.log"
    try:
        for step in (
            ("netns", "add", namespace),
            ("link", "add", outer, "type", "veth", "peer", "name", inner, "netns", namespace),
            ("addr", "add", f"{near}/30", "dev", outer),
            ("link", "set", outer, "up"),
            ("-n", namespace, "addr", "add", f"{far}/30", "dev", inner),
            ("-n", namespace, "link", "set", inner, "up"),
            ("-n", namespace, "link", "set", "lo", "up"),
        ):
            done = _ip(*step)
            if done.returncode:
                raise RuntimeError(f"ip {' '.join(step)} failed: {done.stderr.strip()}")
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["ip", "netns", "exec", namespace, sys.executable, "-m", "http.server", "--bind", far, "8080"],
                cwd=folder,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_for_port(8080, process, log=log, host=far)
            yield f"http://{far}:8080"
        finally:
            _stop(process)
    finally:
        _ip("netns", "del", namespace)
        _ip("link", "del", outer)
