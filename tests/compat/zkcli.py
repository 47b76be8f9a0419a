"""Run Apache's zkCli (ZooKeeperMain) on a script and normalise its transcript.

How zkCli 3.8 reads a script: with no command on its command line it enters the
interactive loop; Debian ships no jline2 jar, so it prints "JLine support is disabled"
and reads stdin line by line with a plain reader (no prompt echo). Each line runs
synchronously; errors do not stop the loop; EOF or `quit` ends it (`quit` closes the
session cleanly, giving a "state:Closed" event). Command output goes to stdout, but
"Created /path" and most error messages go to stderr, so both streams are merged
into one pipe; Java flushes each println, which keeps their order.

Watch events are printed by the client's event thread ("WATCHER::", blank line,
"WatchedEvent state:... type:... path:..."), so their position relative to command
output is racy. The normaliser removes them from the transcript and returns them as
a separate ordered list.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

ZKCLI = os.environ.get("ZKCLI", "/usr/share/zookeeper/bin/zkCli.sh")
# Fast JVM start for a short-lived client.
ZKCLI_JVMFLAGS = "-Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto"
ZKCLI_TIMEOUT = float(os.environ.get("CORRAL_ZKCLI_TIMEOUT", "90"))


def zkcli_unavailable_reason() -> str | None:
    if not os.path.isfile(ZKCLI):
        return f"zkCli not found at {ZKCLI} (apt-get install zookeeper-bin, or set ZKCLI)"
    if shutil.which("java") is None and not os.environ.get("JAVA"):
        return "java not found on PATH"
    return None


def run_zkcli(port: int, script: str, workdir) -> tuple[str, int]:
    """Feed `script` to zkCli on stdin; return (merged stdout+stderr, exit code).

    zkCli's exit code is that of the LAST command it ran (e.g. 1 after a usage error),
    so a non-zero code is part of the transcript, not a harness failure."""
    env = dict(os.environ)
    env["CLIENT_JVMFLAGS"] = ZKCLI_JVMFLAGS
    env["ZOO_LOG_DIR"] = str(workdir)
    env.pop("JVMFLAGS", None)
    proc = subprocess.run(
        [ZKCLI, "-server", f"127.0.0.1:{port}"],
        input=script.encode(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=workdir,
        timeout=ZKCLI_TIMEOUT,
    )
    return proc.stdout.decode("utf-8", "replace"), proc.returncode


@dataclass
class Transcript:
    lines: list[str]
    events: list[str]

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


_ZXID = re.compile(r"^(cZxid|mZxid|pZxid) = 0x([0-9a-f]+)$")
_TIME = re.compile(r"^(ctime|mtime) = .+$")
_OWNER = re.compile(r"^ephemeralOwner = 0x([0-9a-f]+)$")
_EVENT = re.compile(r"^WatchedEvent state:(\S+) type:(\S+) path:(.*)$")


def normalise(raw: str, exit_code: int | None = None) -> Transcript:
    """Mask what legitimately differs between runs and servers.

    * zxids become `Z+n` relative to the first cZxid in the transcript (the scripts
      start with `stat` of their own fresh node), so "absolute" history does not matter
      but every relative step does;
    * ctime/mtime -> <time>; the server address -> <server>;
    * ephemeralOwner session ids -> <session#k> in order of appearance (0x0 stays);
    * SLF4J noise, "WATCHER::" markers and blank lines are dropped (an event block's
      blank lines can be split by stderr output; so empty data prints as nothing);
    * watch events are moved to `events`. The "...WatchRemoved" events are made up by
      the Java client itself when `removewatches` succeeds, in hash-map order that
      changes from JVM to JVM, so each run of consecutive ones is sorted.
    """
    lines: list[str] = []
    events: list[str] = []
    base = None
    sessions: dict[str, str] = {}
    for line in raw.splitlines():
        line = line.rstrip("\r")
        if not line.strip() or line.startswith("SLF4J:") or line == "WATCHER::":
            continue
        m = _EVENT.match(line)
        if m:
            events.append(f"{m.group(2)} {m.group(3)} ({m.group(1)})")
            continue
        if line.startswith("Connecting to "):
            line = "Connecting to <server>"
        m = _ZXID.match(line)
        if m:
            value = int(m.group(2), 16)
            if base is None:
                base = value
            line = f"{m.group(1)} = Z{value - base:+d}"
        elif _TIME.match(line):
            line = line.split(" = ")[0] + " = <time>"
        else:
            m = _OWNER.match(line)
            if m and m.group(1) != "0":
                key = m.group(1)
                sessions.setdefault(key, f"<session#{len(sessions) + 1}>")
                line = f"ephemeralOwner = {sessions[key]}"
        lines.append(line)
    if exit_code is not None:
        lines.append(f"[exit {exit_code}]")
    return Transcript(lines, _sort_local_removal_runs(events))


def _sort_local_removal_runs(events: list[str]) -> list[str]:
    out: list[str] = []
    run: list[str] = []
    for event in events + [""]:
        if "WatchRemoved " in event:
            run.append(event)
            continue
        out.extend(sorted(run))
        run = []
        if event:
            out.append(event)
    return out
