"""A private Redis with Sentinel for tests: a primary, a replica and three sentinels.

Every process listens on a free port of 127.0.0.1 and keeps its files in the folder given;
``stop`` (also on leaving the ``with`` block, whatever happened) kills them all. The sentinels
are ``redis-server --sentinel`` (what Debian's ``redis-sentinel`` runs), from the same binary the
other tests use. They declare a master down after ``down_after_ms`` (default ``DOWN_AFTER_MS``)
and need two of three to agree, so a SIGKILLed primary is replaced within a few seconds.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from pathlib import Path

import redis

from kqueue.testing import free_port, redis_server_path

#: The service name sentinels know the primary by.
SERVICE = "mymaster"
#: How long a master must be silent before a sentinel thinks it down, milliseconds (at 1,000 a
#: new primary busy on a loaded 2-core box was once judged down 2 s after its promotion, and the
#: sentinels failed back over to the restarted old one).
DOWN_AFTER_MS = 2000
#: How many sentinels run, and how many must agree that the master is down.
SENTINELS, QUORUM = 3, 2


class SentinelCluster:
    """A primary, ``replicas`` replicas and three sentinels, all private to one test."""

    def __init__(
        self,
        folder: Path,
        *,
        replicas: int = 1,
        appendonly: bool = False,
        down_after_ms: int = DOWN_AFTER_MS,
    ):
        self.folder = Path(folder)
        self.down_after_ms = down_after_ms
        self.folder.mkdir(parents=True, exist_ok=True)
        self.appendonly = appendonly
        self.binary = redis_server_path()
        if self.binary is None:
            raise FileNotFoundError("no redis-server binary (apt install redis-server)")
        self.data_ports = [free_port() for _ in range(1 + replicas)]
        self.sentinel_ports = [free_port() for _ in range(SENTINELS)]
        #: port -> the process serving it (data servers and sentinels).
        self.processes: dict[int, subprocess.Popen] = {}

    # --- life cycle -------------------------------------------------------------------------

    def __enter__(self) -> SentinelCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout_s: float = 30.0) -> SentinelCluster:
        """Start every process and wait until the sentinels see the primary and its replicas.

        Raises:
            RuntimeError: the cluster did not settle within ``timeout_s`` (logs in the folder).
        """
        primary, *replicas = self.data_ports
        self.start_server(primary)
        for port in replicas:
            self.start_server(port, replica_of=primary)
        for port in self.sentinel_ports:
            self._start_sentinel(port, primary)
        self._wait(self._settled, timeout_s, "the sentinels to see the primary and replicas")
        return self

    def stop(self) -> None:
        """Kill every process this cluster started (safe to call twice)."""
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
        for process in self.processes.values():
            process.wait(10)

    def start_server(self, port: int, replica_of: int | None = None) -> None:
        """Start (or restart) the data server on ``port``, a replica of ``replica_of`` if given."""
        command = [self.binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly else []
        command += ["--appendfilename", f"appendonly-{port}.aof", "--appenddirname", f"aof-{port}"]
        command += ["--dir", str(self.folder), "--logfile", str(self.folder / f"redis-{port}.log")]
        command += ["--replicaof", "127.0.0.1", str(replica_of)] if replica_of else []
        self.processes[port] = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._wait(lambda: self._pings(port), 10, f"redis on port {port}")

    def _start_sentinel(self, port: int, primary: int) -> None:
        config = self.folder / f"sentinel-{port}.conf"  # sentinels rewrite their config file
        config.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {self.folder}\n"
            f"logfile {self.folder / f'sentinel-{port}.log'}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary} {QUORUM}\n"
            f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}\n"
            f"sentinel failover-timeout {SERVICE} 10000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        self.processes[port] = subprocess.Popen(
            [self.binary, str(config), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait(lambda: self._pings(port), 10, f"sentinel on port {port}")

    # --- what the tests ask -----------------------------------------------------------------

    def url(self, **options: object) -> str:
        """``redis+sentinel://`` URL of the service (``options`` become its query)."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        query = "&".join(f"{name}={value}" for name, value in options.items())
        return f"redis+sentinel://{hosts}/{SERVICE}/0" + (f"?{query}" if query else "")

    def master_port(self) -> int | None:
        """The primary's port as the first sentinel that answers sees it (None: none answers)."""
        for port in self.sentinel_ports:
            try:
                with redis.Redis(port=port, socket_timeout=1) as sentinel:
                    _, master = sentinel.sentinel_get_master_addr_by_name(SERVICE)
                    return int(master)
            except (redis.RedisError, TypeError):
                continue
        return None

    @contextlib.contextmanager
    def replicas_lagging(self, master_port: int):
        """Inside the block the master's writes reach no replica, as when replicas lag: they are
        SIGSTOPped and their links cut (``CLIENT KILL TYPE replica``), so they cannot reconnect;
        on leaving they are resumed (and resync if the master is still there)."""
        replicas = [p for p in self.data_ports if p != master_port and self._running(p)]
        for port in replicas:
            self.processes[port].send_signal(signal.SIGSTOP)
        try:
            with redis.Redis(port=master_port, socket_timeout=1) as client:
                client.client_kill_filter(_type="replica")
            yield
        finally:
            for port in replicas:
                self.processes[port].send_signal(signal.SIGCONT)

    def _running(self, port: int) -> bool:
        return port in self.processes and self.processes[port].poll() is None

    def kill(self, port: int) -> None:
        """SIGKILL the server on ``port`` (no shutdown, no final write)."""
        self.processes[port].kill()
        self.processes[port].wait(10)

    def wait_failover(self, old_port: int, timeout_s: float = 60.0) -> int:
        """Wait until the sentinels name a master other than ``old_port`` that takes writes;
        returns its port."""
        self._wait(lambda: self._writable_master(old_port), timeout_s, "the failover")
        return self.master_port()

    def rejoin(self, port: int) -> None:
        """Restart the server on ``port`` as a replica of the current primary (what a process
        supervisor and the sentinels do to a crashed primary), and wait until it is in sync."""
        master = self.master_port()
        self.start_server(port, replica_of=master)
        self._wait(lambda: self._in_sync(port), 30, f"port {port} to sync from {master}")

    # --- waiting ----------------------------------------------------------------------------

    def _settled(self) -> bool:
        replicas = len(self.data_ports) - 1
        if not all(self._in_sync(port) for port in self.data_ports[1:]):
            return False
        for port in self.sentinel_ports:
            with redis.Redis(port=port, socket_timeout=1) as sentinel:
                state = sentinel.sentinel_master(SERVICE)
            if state["num-slaves"] < replicas or state["num-other-sentinels"] < SENTINELS - 1:
                return False
        return True

    def _writable_master(self, old_port: int) -> bool:
        port = self.master_port()
        if port is None or port == old_port:
            return False
        with redis.Redis(port=port, socket_timeout=1) as client:
            return client.info("replication")["role"] == "master"

    def _in_sync(self, port: int) -> bool:
        with redis.Redis(port=port, socket_timeout=1) as client:
            info = client.info("replication")
        return info["role"] == "slave" and info.get("master_link_status") == "up"

    @staticmethod
    def _pings(port: int) -> bool:
        with redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1) as client:
            return bool(client.ping())

    def _wait(self, condition, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if condition():
                    return
            except (redis.RedisError, OSError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}; logs in {self.folder}")
            time.sleep(0.1)
