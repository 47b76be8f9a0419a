"""Start and stop a ZooKeeper-compatible server for one test module.

Two kinds of server are supported, and both are started from the same
generated ``zoo.cfg``:

``zookeeper``
    Apache ZooKeeper 3.8 as packaged by Debian (``/usr/share/java/zookeeper.jar``),
    run in the foreground with ``java ... QuorumPeerMain <zoo.cfg>``.
``corral``
    The Corral binary (env ``CORRAL_SERVER_BIN``, default
    ``<repo>/target/debug/corral-server``), run as ``corral-server --config <zoo.cfg>``.

Environment:

``CORRAL_COMPAT_TARGETS``   comma list of kinds to run (default ``corral,zookeeper``)
``CORRAL_REQUIRE_COMPAT``   ``1`` turns "prerequisite missing" from a skip into a failure
``CORRAL_SERVER_BIN``       path of the Corral server binary
``ZOOKEEPER_JAR``           path of the ZooKeeper server jar (default: Debian's)
``JAVA``                    java executable (default: ``java`` on PATH)
``CORRAL_COMPAT_START_TIMEOUT``  seconds to wait for ``ruok`` -> ``imok`` (default 20)

Processes are only ever signalled by the PID this module started.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("corral", "zookeeper")
HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]

DEFAULT_ZOOKEEPER_JAR = "/usr/share/java/zookeeper.jar"
# Optional slf4j backend so that the ZooKeeper server actually writes a log
# (the Debian jar's manifest only pulls in slf4j-api, which logs nothing).
SLF4J_BACKENDS = ("/usr/share/java/slf4j-simple.jar",)

# ZooKeeper reads these as plain system properties (no "zookeeper." prefix), so
# the zoo.cfg -> "zookeeper.<key>" mapping does not reach them. We pass the
# value from the same zoo.cfg as -D<key>=<value>.
UNPREFIXED_SYSTEM_PROPERTY_PREFIXES = ("znode.container.",)


def base_config(data_dir: Path, port: int) -> dict[str, str]:
    """The zoo.cfg every compat server starts from (insertion order is file order)."""
    return {
        "tickTime": "2000",
        "initLimit": "10",
        "syncLimit": "5",
        "dataDir": str(data_dir),
        "clientPort": str(port),
        "clientPortAddress": HOST,
        "maxClientCnxns": "60",
        "4lw.commands.whitelist": "*",
        "extendedTypesEnabled": "true",
        "znode.container.checkIntervalMs": "1000",
        "admin.enableServer": "false",
    }


def render_config(cfg: dict[str, str]) -> str:
    return "".join(f"{k}={v}\n" for k, v in cfg.items())


def enabled_kinds() -> list[str]:
    raw = os.environ.get("CORRAL_COMPAT_TARGETS", "corral,zookeeper")
    kinds = [k.strip() for k in raw.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(
            f"CORRAL_COMPAT_TARGETS names unknown kinds {unknown}; known: {list(KINDS)}"
        )
    # keep order, drop duplicates
    return list(dict.fromkeys(kinds))


def require_compat() -> bool:
    return os.environ.get("CORRAL_REQUIRE_COMPAT", "") == "1"


def corral_binary() -> Path:
    return Path(os.environ.get("CORRAL_SERVER_BIN", REPO_ROOT / "target/debug/corral-server"))


def zookeeper_jar() -> Path:
    return Path(os.environ.get("ZOOKEEPER_JAR", DEFAULT_ZOOKEEPER_JAR))


def java_executable() -> str | None:
    return os.environ.get("JAVA") or shutil.which("java")


def unavailable_reason(kind: str) -> str | None:
    """None when `kind` can be started here, else a human-readable reason."""
    if kind == "corral":
        binary = corral_binary()
        if not binary.is_file():
            return (
                f"corral server binary not found at {binary} "
                "(build it with `cargo build -p server` or set CORRAL_SERVER_BIN)"
            )
        if not os.access(binary, os.X_OK):
            return f"corral server binary {binary} is not executable"
        return None
    if kind == "zookeeper":
        if java_executable() is None:
            return "java not found on PATH (apt-get install default-jre-headless)"
        jar = zookeeper_jar()
        if not jar.is_file():
            return (
                f"Apache ZooKeeper jar not found at {jar} "
                "(apt-get install zookeeper zookeeper-bin, or set ZOOKEEPER_JAR)"
            )
        return None
    return f"unknown server kind {kind!r}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind 0, release)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def four_letter(port: int, cmd: str, timeout: float = 5.0) -> str:
    """Send a four-letter word and return the whole reply (server closes after it)."""
    assert len(cmd) == 4, cmd
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(cmd.encode("ascii"))
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        else:
            raise TimeoutError(f"4lw {cmd!r} on port {port}: no EOF within {timeout}s")
    return b"".join(chunks).decode("utf-8", "replace")


class ServerStartError(RuntimeError):
    pass


@dataclass
class Server:
    kind: str
    workdir: Path
    config: dict[str, str]
    port: int
    cfg_path: Path
    log_path: Path
    argv: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def hosts(self) -> str:
        """Connect string for clients."""
        return f"{HOST}:{self.port}"

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"<no log: {e}>"
        return "\n".join(text.splitlines()[-lines:])

    def four_letter(self, cmd: str, timeout: float = 5.0) -> str:
        return four_letter(self.port, cmd, timeout)

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float | None = None) -> None:
        if timeout is None:
            timeout = float(os.environ.get("CORRAL_COMPAT_START_TIMEOUT", "20"))
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        # No event exists for "port is open", so poll with a bound.
        deadline = time.monotonic() + timeout
        last = "no attempt"
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise ServerStartError(
                    f"{self.kind} server exited with code {code} before answering ruok\n"
                    f"argv: {self.argv}\n--- {self.log_path} (tail) ---\n{self.log_tail()}"
                )
            try:
                reply = four_letter(self.port, "ruok", timeout=1.0)
                if reply == "imok":
                    # ZooKeeper answers ruok before its request pipeline runs and then
                    # drops the first sessions ("ZooKeeperServer not running"); srvr
                    # only shows "Mode:" once it is serving.
                    srvr = four_letter(self.port, "srvr", timeout=1.0)
                    if "Mode: " in srvr:
                        return
                    last = f"ruok ok, srvr answered {srvr!r}"
                else:
                    last = f"ruok answered {reply!r}"
            except OSError as e:
                last = f"{type(e).__name__}: {e}"
            time.sleep(0.05)
        self.stop()
        raise ServerStartError(
            f"{self.kind} server on {self.hosts} did not answer ruok with imok within "
            f"{timeout}s (last: {last})\nargv: {self.argv}\n"
            f"--- {self.log_path} (tail) ---\n{self.log_tail()}"
        )

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; only our own PID."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        try:
            os.kill(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            proc.wait(timeout=10)


def _zookeeper_argv(cfg: dict[str, str], cfg_path: Path) -> list[str]:
    java = java_executable()
    classpath = [str(zookeeper_jar())]
    classpath += [b for b in SLF4J_BACKENDS if os.path.isfile(b)]
    argv = [
        java,
        "-Xmx512m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Dorg.slf4j.simpleLogger.showDateTime=true",
        "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
    ]
    for key, value in cfg.items():
        if key.startswith(UNPREFIXED_SYSTEM_PROPERTY_PREFIXES):
            argv.append(f"-D{key}={value}")
    argv += ["-cp", ":".join(classpath), "org.apache.zookeeper.server.quorum.QuorumPeerMain"]
    argv.append(str(cfg_path))
    return argv


def _corral_argv(cfg_path: Path) -> list[str]:
    return [str(corral_binary()), "--config", str(cfg_path)]


def make_server(kind: str, workdir: Path, overrides: dict[str, str] | None = None) -> Server:
    """Write zoo.cfg into `workdir` and prepare (not start) a server of `kind`."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "data"
    data_dir.mkdir(exist_ok=True)
    port = free_port()
    cfg = base_config(data_dir, port)
    for key, value in (overrides or {}).items():
        if value is None:
            cfg.pop(key, None)
        else:
            cfg[key] = str(value)
    cfg_path = workdir / "zoo.cfg"
    cfg_path.write_text(render_config(cfg))
    log_path = workdir / f"{kind}-server.log"
    if kind == "zookeeper":
        argv = _zookeeper_argv(cfg, cfg_path)
    elif kind == "corral":
        argv = _corral_argv(cfg_path)
    else:
        raise ValueError(f"unknown server kind {kind!r}")
    return Server(kind, workdir, cfg, int(cfg["clientPort"]), cfg_path, log_path, argv)


def start_server(kind: str, workdir: Path, overrides: dict[str, str] | None = None) -> Server:
    reason = unavailable_reason(kind)
    if reason:
        raise ServerStartError(reason)
    server = make_server(kind, workdir, overrides)
    server.start()
    return server
