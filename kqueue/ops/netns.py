"""A small network of hosts on one Linux machine: network namespaces joined by veth pairs.

``Lab`` builds one namespace for Redis and one per worker host, each with a veth pair whose other
end is a port of a bridge in the calling (root) namespace, which also gets an address, so the
caller reaches every host. Faults are applied to a host's link: ``link_down`` /
``link_up`` (the bridge-side end of its veth: the host keeps running, cut off),
``rate_limit`` (``tc tbf``) and ``kill_host`` (SIGKILL to every process in its namespace).
Latency with loss comes from ``kqueue.ops.slowlink`` run inside the host, since this kernel has
no ``sch_netem`` (docs/DECISIONS.md, issue 20).

Needs root and iproute2 (``ip``, ``tc``). ``close`` (also run at exit and by ``with``) kills every
process left in the lab's namespaces and removes them and the bridge; names carry the caller's
pid, so labs of concurrent sessions do not meet.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REDIS_PORT = 6379
#: Where iproute2 lives when ``PATH`` lacks the sbin folders (a minimal environment).
SBIN = ("/usr/sbin", "/sbin")


def tool(name: str) -> str | None:
    """The full path of ``ip`` or ``tc``: on ``PATH``, else in ``SBIN``; None if neither."""
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))


def available() -> str | None:
    """Why a lab cannot be built here (not Linux, not root, no ``ip``), or None if it can."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root"
    if tool("ip") is None or tool("tc") is None:
        return "iproute2 (ip, tc) is not installed"
    return None


def run_ip(*args: str) -> str:
    """Run ``ip`` (or ``tc`` when the first argument is ``tc``); its output.

    Raises:
        RuntimeError: the command failed (its stderr in the message).
    """
    command = [tool("tc"), *args[1:]] if args[0] == "tc" else [tool("ip"), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")
    return done.stdout


class Lab:
    """A bridge, a Redis namespace and ``hosts`` worker namespaces (see the module docstring).

    Args:
        hosts: labels of the worker hosts (``"A"``, ``"B"``, ...), at most 20.
        folder: where Redis's files and the processes' logs go.
    """

    def __init__(self, hosts: Sequence[str], folder: Path):
        tag = os.getpid() % 100_000
        self.prefix = f"kq{tag}"
        self.subnet = f"10.{100 + tag % 150}.{tag % 250}"
        self.folder = Path(folder)
        self.hosts = list(hosts)
        self.bridge = f"{self.prefix}br"
        self.processes: list[subprocess.Popen] = []
        #: What ``build`` made, as ``(ip object, name)``: removed in reverse by ``close``.
        self.made: list[tuple[str, str]] = []
        self.closed = False

    # names and addresses
    def namespace(self, host: str) -> str:
        """The namespace of ``host`` (or of ``"redis"``)."""
        return f"{self.prefix}-{host.lower()}"

    def veth(self, host: str) -> str:
        """The bridge-side end of ``host``'s veth pair (what ``link_down`` takes down)."""
        return f"{self.prefix}v{self._index(host)}"

    def address(self, host: str) -> str:
        """``host``'s IPv4 address (``"redis"``: the Redis host's)."""
        return f"{self.subnet}.{self._index(host) + 1}"

    @property
    def redis_url(self) -> str:
        """The Redis server's URL, reachable from every host and from the caller."""
        return f"redis://{self.address('redis')}:{REDIS_PORT}/0"

    def _index(self, host: str) -> int:
        return 0 if host == "redis" else 1 + self.hosts.index(host)

    # building and tearing down
    def __enter__(self) -> Lab:
        return self.build()

    def __exit__(self, *exc) -> None:
        self.close()

    def build(self) -> Lab:
        """Create the bridge and the namespaces, and start Redis. Cleans up if a step fails."""
        atexit.register(self.close)
        try:
            run_ip("link", "add", self.bridge, "type", "bridge")
            self.made.append(("link", self.bridge))
            run_ip("addr", "add", f"{self.subnet}.254/24", "dev", self.bridge)
            run_ip("link", "set", self.bridge, "up")
            for host in ["redis", *self.hosts]:
                self._add_host(host)
            self._start_redis()
        except BaseException:
            self.close()
            raise
        return self

    def _add_host(self, host: str) -> None:
        namespace, veth = self.namespace(host), self.veth(host)
        run_ip("netns", "add", namespace)
        self.made.append(("netns", namespace))
        run_ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        self.made.append(("link", veth))
        run_ip("link", "set", veth, "master", self.bridge)
        run_ip("link", "set", veth, "up")
        inside = ("netns", "exec", namespace, tool("ip"))
        run_ip(*inside, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
        run_ip(*inside, "link", "set", "eth0", "up")
        run_ip(*inside, "link", "set", "lo", "up")

    def _start_redis(self) -> None:
        folder = self.folder / "redis"
        folder.mkdir(parents=True, exist_ok=True)
        args = ["--bind", "0.0.0.0", "--port", str(REDIS_PORT), "--protected-mode", "no"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(folder)]
        import redis  # lazy: a dependency of the Redis backend only

        from kqueue.testing import redis_server_path  # redis-server, else the bundled Valkey

        self.start(
            "redis", [redis_server_path() or "redis-server", *args], log=folder / "redis.log"
        )

        client = redis.Redis(host=self.address("redis"), port=REDIS_PORT, socket_timeout=2)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"Redis did not come up in its namespace: {folder}"
                    ) from None
                time.sleep(0.1)
            finally:
                client.close()

    def start(
        self, host: str, command: list[str], *, log: Path, env=None, cwd=None
    ) -> subprocess.Popen:
        """Start ``command`` inside ``host``'s namespace (in ``cwd``), its output to ``log``."""
        with open(log, "w") as out:
            process = subprocess.Popen(
                [tool("ip"), "netns", "exec", self.namespace(host), *command],
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def close(self) -> None:
        """Kill what runs in the lab's namespaces, then delete them and the bridge (idempotent)."""
        if self.closed:
            return
        self.closed = True
        for kind, name in self.made:
            if kind == "netns":
                self._kill_all(name)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
        for kind, name in reversed(self.made):  # veths, then namespaces, then the bridge
            subprocess.run([tool("ip"), kind, "del", name], capture_output=True, timeout=30)
        atexit.unregister(self.close)

    # faults
    def pids(self, host: str) -> list[int]:
        """Every process running in ``host``'s namespace."""
        out = subprocess.run(
            [tool("ip"), "netns", "pids", self.namespace(host)], capture_output=True, text=True
        ).stdout
        return [int(pid) for pid in out.split()]

    def kill_host(self, host: str) -> list[int]:
        """SIGKILL every process in ``host``'s namespace (the host dies); the pids killed."""
        return self._kill_all(self.namespace(host))

    def _kill_all(self, namespace: str) -> list[int]:
        out = subprocess.run(
            [tool("ip"), "netns", "pids", namespace], capture_output=True, text=True
        )
        killed = []
        for pid in map(int, out.stdout.split()):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        return killed

    def link_down(self, host: str) -> None:
        """Cut ``host`` off the network (its processes keep running)."""
        run_ip("link", "set", "dev", self.veth(host), "down")

    def link_up(self, host: str) -> None:
        """Reconnect ``host``."""
        run_ip("link", "set", "dev", self.veth(host), "up")

    def rate_limit(self, host: str, rate: str = "20mbit") -> None:
        """Limit traffic towards ``host`` to ``rate`` with a token bucket (``tc tbf``)."""
        run_ip("tc", "qdisc", "add", "dev", self.veth(host), "root", "tbf", "rate", rate,
               "burst", "32kbit", "latency", "50ms")  # fmt: skip
