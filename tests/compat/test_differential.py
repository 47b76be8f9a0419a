"""Differential test: one scripted sequence of ~165 operations (3 sessions), run on a fresh server of
each kind, must produce the same normalised transcript.

The transcript records, in order, every operation's result (or ZooKeeper error code),
full Stats except ctime/mtime, the zxid of every reply relative to the first reply of
the run, and every watch notification each client received, interleaved where it was
received: a client's own events appear before the reply of the write that caused them
(zkutil.Tap sees the socket order), other clients' events are collected after each
operation behind a `sync` barrier on every other client (a notification is queued to a
connection before any later reply on it), so the order is deterministic.

Modes:
* two or more kinds enabled  -> compare the first two kinds (order of CORRAL_COMPAT_TARGETS);
* CORRAL_DIFF_SELFTEST=1     -> zookeeper vs zookeeper, validating the normaliser;
* always, per enabled kind   -> compare with the transcript recorded from ZooKeeper 3.8
  (golden/differential-zookeeper-3.8.txt; CORRAL_DIFF_RECORD=1 rewrites it from zookeeper).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import ZookeeperError
from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL, CREATOR_ALL_ACL, OPEN_ACL_UNSAFE, Id, make_acl, make_digest_acl

import servers
from conftest import KIND_PARAMS, ensure_kind_available
from zkutil import (
    AddWatch,
    CheckVersion,
    Create,
    Create2,
    CreateContainer,
    CreateTTL,
    Delete,
    GetAllChildrenNumber,
    GetEphemerals,
    RawCreate,
    RawCreate2,
    RawDelete,
    RawExists,
    RawMulti,
    RawSetData,
    RemoveWatches,
    SetData,
    Tap,
    WhoAmI,
    raw_call,
)

GOLDEN = Path(__file__).resolve().parent / "golden" / "differential-zookeeper-3.8.txt"
OPEN = list(OPEN_ACL_UNSAFE)
SWEEP_TIMEOUT = 20.0  # container/TTL reaper runs every znode.container.checkIntervalMs=1000


def noop(_event):
    pass


class Run:
    """Drives clients against one server and writes the normalised transcript."""

    def __init__(self, server: servers.Server):
        self.server = server
        self.lines: list[str] = []
        self.clients: dict[str, KazooClient] = {}
        self.sessions: dict[int, str] = {}
        self.base: int | None = None
        self._watch_marks: dict[str, int] = {}
        # per client: how much of its tap is already in the transcript
        self.cursor: dict[str, int] = {}

    # ---------------------------------------------------------------- plumbing

    def connect(self, name: str) -> None:
        client = KazooClient(hosts=self.server.hosts, timeout=10)
        client.tap = Tap(client)
        client.start(timeout=15)
        self.clients[name] = client
        self.cursor[name] = client.tap.mark()
        sid = client.client_id[0]
        self.sessions[sid] = f"session#{len(self.sessions) + 1}"
        self.lines.append(f"{name}: connect -> {self.sessions[sid]}")

    def close(self, name: str) -> None:
        client = self.clients.pop(name)
        client.stop()
        client.close()
        self._record(name, "close", "ok", client.tap.since(self.cursor.pop(name)))
        self.barrier()

    def zx(self, zxid: int) -> str:
        if zxid == 0:
            return "0"
        if zxid == -1:
            return "-1"
        if self.base is None:
            self.base = zxid
        return f"Z{zxid - self.base:+d}"

    def stat(self, st: ZnodeStat | None) -> str:
        if st is None:
            return "None"
        owner = st.ephemeralOwner
        owner_s = "0" if owner == 0 else self.sessions.get(owner, f"{owner & (2**64 - 1):#x}")
        return (
            f"Stat(czxid={self.zx(st.czxid)} mzxid={self.zx(st.mzxid)} pzxid={self.zx(st.pzxid)}"
            f" version={st.version} cversion={st.cversion} aversion={st.aversion}"
            f" owner={owner_s} dataLength={st.dataLength} numChildren={st.numChildren}"
            f" {'ctime=mtime' if st.ctime == st.mtime else 'ctime<mtime' if st.ctime < st.mtime else 'ctime>mtime'})"
        )

    def fmt(self, value) -> str:
        if isinstance(value, ZnodeStat):
            return self.stat(value)
        if isinstance(value, BaseException):
            return self.err(value)
        if isinstance(value, ACL):
            return f"{value.perms}:{value.id.scheme}:{value.id.id}"
        if isinstance(value, tuple):
            return "(" + ", ".join(self.fmt(v) for v in value) + ")"
        if isinstance(value, list):
            return "[" + ", ".join(self.fmt(v) for v in value) + "]"
        if isinstance(value, bytes):
            return repr(value)
        return repr(value)

    @staticmethod
    def err(exc: BaseException) -> str:
        if isinstance(exc, ZookeeperError) and hasattr(exc, "code"):
            return f"ERR {exc.code} {type(exc).__name__}"
        raise exc  # not a ZooKeeper reply: harness or server broke; fail loudly

    def _record(self, name: str, label: str, result: str, entries) -> None:
        reply = None
        for e in entries:
            if e[0] == "event":
                self.lines.append(f"  {name} <- {e[1]} {e[2]} state={e[3]}")
            elif e[0] == "reply":
                reply = e
        zxid = f" @{self.zx(reply[2])}" if reply is not None else ""
        self.lines.append(f"{name}: {label} -> {result}{zxid}")

    def barrier(self, skip: str | None = None) -> None:
        """sync every other client so that events already due to it have arrived, and
        move those events into the transcript (the sync replies themselves are not)."""
        for name, client in self.clients.items():
            if name == skip:
                continue
            client.sync("/")
            entries = client.tap.since(self.cursor[name])
            self.cursor[name] += len(entries)
            for e in entries:
                if e[0] == "event":
                    self.lines.append(f"  {name} <- {e[1]} {e[2]} state={e[3]}")

    def op(self, name: str, label: str, fn, sort: bool | None = None):
        client = self.clients[name]
        if sort is None:  # child lists and ephemeral lists come in Java hash order
            sort = label.startswith(("getChildren", "getEphemerals"))
        try:
            value = fn(client)
            if sort and isinstance(value, list):
                value = sorted(value)
            if sort and isinstance(value, tuple) and isinstance(value[0], list):
                value = (sorted(value[0]),) + value[1:]
            result = self.fmt(value)
        except ZookeeperError as exc:
            value = exc
            result = self.err(exc)
        entries = client.tap.since(self.cursor[name])
        self.cursor[name] += len(entries)
        self._record(name, label, result, entries)
        self.barrier(skip=name)
        return value

    def wait_deleted(self, name: str, path: str) -> None:
        """Wait (bounded) for the reaper's NodeDeleted on `name`'s watch of `path`."""
        client = self.clients[name]
        client.tap.wait_event(
            "NodeDeleted", path, since=self._watch_marks.pop(path), timeout=SWEEP_TIMEOUT
        )
        self.lines.append(f"{name}: (reaper removed {path})")
        self.barrier()

    def watch_for_delete(self, name: str, path: str) -> None:
        client = self.clients[name]
        self._watch_marks[path] = client.tap.mark()
        self.op(name, f"exists {path} watch", lambda c: c.exists(path, watch=noop))

    def stop_all(self) -> None:
        for client in self.clients.values():
            try:
                client.stop()
            finally:
                client.close()
        self.clients.clear()


def script(r: Run) -> None:  # noqa: C901 - a long, flat list of steps on purpose
    d = "/d"
    r.connect("A")
    r.op("A", "exists /", lambda c: c.exists("/"))  # zxid base: A's createSession
    r.connect("B")
    r.op("A", f"create {d}", lambda c: c.create(d, b"root", include_data=True))

    # --- basic create / watches / versions
    r.op("A", f"exists {d}/x watch", lambda c: c.exists(f"{d}/x", watch=noop))
    r.op("B", f"getChildren {d} watch", lambda c: c.get_children(d, watch=noop))
    r.op("A", f"create {d}/x", lambda c: c.create(f"{d}/x", b"1", include_data=True))
    r.op("A", f"get {d}/x watch", lambda c: c.get(f"{d}/x", watch=noop))
    r.op("A", f"set {d}/x v0", lambda c: c.set(f"{d}/x", b"2", version=0))
    r.op("A", f"set {d}/x v0 (stale)", lambda c: c.set(f"{d}/x", b"3", version=0))
    r.op("A", f"set {d}/x v1", lambda c: c.set(f"{d}/x", b"3", version=1))
    r.op("A", f"set {d}/x v-1 null data", lambda c: c.set(f"{d}/x", None))
    r.op("A", f"get {d}/x", lambda c: c.get(f"{d}/x"))
    r.op("A", f"set {d}/missing", lambda c: c.set(f"{d}/missing", b"x"))
    r.op("A", f"create {d}/x again", lambda c: c.create(f"{d}/x"))
    r.op("A", f"create {d}/missing/y", lambda c: c.create(f"{d}/missing/y"))
    r.op("A", f"delete {d}/x v5", lambda c: c.delete(f"{d}/x", version=5))
    r.op("A", f"create {d}/x/child", lambda c: c.create(f"{d}/x/child", b"c"))
    r.op("A", f"delete {d}/x (not empty)", lambda c: c.delete(f"{d}/x"))
    r.op("A", f"delete {d}/x v0 (not empty, bad version)", lambda c: c.delete(f"{d}/x", version=0))
    r.op("B", f"getChildren {d}/x watch", lambda c: c.get_children(f"{d}/x", watch=noop))
    r.op("B", f"exists {d}/x/child watch", lambda c: c.exists(f"{d}/x/child", watch=noop))
    r.op("B", f"get {d}/x watch", lambda c: c.get(f"{d}/x", watch=noop))
    r.op("A", f"delete {d}/x/child", lambda c: c.delete(f"{d}/x/child"))
    r.op("A", f"delete {d}/x v3", lambda c: c.delete(f"{d}/x", version=3))
    r.op("A", f"exists {d}/x", lambda c: c.exists(f"{d}/x"))
    r.op("A", f"get {d}/x", lambda c: c.get(f"{d}/x"))
    r.op("A", f"getChildren {d}/x", lambda c: c.get_children(f"{d}/x"))
    r.op("A", f"getChildren2 {d}", lambda c: c.get_children(d, include_data=True))

    # --- sequential nodes: the suffix counts creates, cversion counts creates + deletes
    s = f"{d}/seq"
    r.op("A", f"create {s}", lambda c: c.create(s))
    for i in range(3):
        r.op("A", f"create {s}/s- seq #{i}", lambda c: c.create(f"{s}/s-", b"%d" % i, sequence=True))
    r.op("A", f"create {s}/plain", lambda c: c.create(f"{s}/plain"))
    r.op("A", f"delete {s}/s-0000000001", lambda c: c.delete(f"{s}/s-0000000001"))
    r.op("A", f"delete {s}/plain", lambda c: c.delete(f"{s}/plain"))
    r.op("A", f"create {s}/s- seq after deletes", lambda c: c.create(f"{s}/s-", sequence=True, include_data=True))
    r.op("A", f"create {s}/ seq (bare counter)", lambda c: c.create(f"{s}/", sequence=True))
    r.op("A", f"create {s}/e- ephemeral seq", lambda c: c.create(f"{s}/e-", ephemeral=True, sequence=True, include_data=True))
    r.op("A", f"getChildren2 {s}", lambda c: c.get_children(s, include_data=True))

    # --- ephemerals and session close
    r.connect("C")
    r.op("C", f"create {d}/eph ephemeral", lambda c: c.create(f"{d}/eph", b"e", ephemeral=True, include_data=True))
    r.op("C", f"create {d}/eph/kid", lambda c: c.create(f"{d}/eph/kid"))
    r.op("C", f"create {d}/eph/s- seq", lambda c: c.create(f"{d}/eph/s-", sequence=True))
    r.op("C", f"create {d}/es- ephemeral seq", lambda c: c.create(f"{d}/es-", ephemeral=True, sequence=True))
    r.op("C", f"exists {d}/eph watch (own)", lambda c: c.exists(f"{d}/eph", watch=noop))
    r.op("A", f"exists {d}/eph watch", lambda c: c.exists(f"{d}/eph", watch=noop))
    r.op("B", f"getChildren {d} watch", lambda c: c.get_children(d, watch=noop))
    r.op("C", f"getEphemerals {d}", lambda c: raw_call(c, GetEphemerals(d)))
    r.op("C", "getEphemerals /", lambda c: raw_call(c, GetEphemerals("/")))
    r.op("A", "getEphemerals / (A's own)", lambda c: raw_call(c, GetEphemerals("/")))
    r.op("A", f"getAllChildrenNumber {d}", lambda c: raw_call(c, GetAllChildrenNumber(d)))
    r.op("A", "getAllChildrenNumber /zookeeper", lambda c: raw_call(c, GetAllChildrenNumber("/zookeeper")))
    r.close("C")
    r.op("A", f"getChildren2 {d}", lambda c: c.get_children(d, include_data=True))

    # --- path validation (raw requests: kazoo would normalise these paths)
    for bad in ("relative", f"{d}/", "//", f"{d}//x", f"{d}/./x", f"{d}/.", f"{d}/..", "", f"{d}/\x01", f"{d}/a\x00"):
        r.op("A", f"create {bad!r}", lambda c, p=bad: raw_call(c, RawCreate(p, b"", OPEN, 0)))
    for bad in ("/", "/zookeeper", "/zookeeper/quota", f"{d}//x", "relative"):
        r.op("A", f"delete {bad!r}", lambda c, p=bad: raw_call(c, RawDelete(p, -1)))
    for bad in (f"{d}/", "", f"{d}/./x"):
        r.op("A", f"setData {bad!r}", lambda c, p=bad: raw_call(c, RawSetData(p, b"", -1)))
    for odd in ("", f"{d}/", "relative"):
        r.op("A", f"exists {odd!r}", lambda c, p=odd: raw_call(c, RawExists(p)))
    r.op("A", "create flags=9", lambda c: raw_call(c, RawCreate(f"{d}/f9", b"", OPEN, 9)))
    r.op("A", "create2 flags=4 (plain persistent)", lambda c: raw_call(c, RawCreate2(f"{d}/f4", b"", OPEN, 4)))
    r.op("A", "create /zookeeper/user-node", lambda c: c.create("/zookeeper/user-node"))
    r.op("A", "delete /zookeeper/user-node", lambda c: c.delete("/zookeeper/user-node"))

    # --- multi
    m = f"{d}/m"
    r.op("A", f"create {m}", lambda c: c.create(m))

    def txn_ok(c):
        t = c.transaction()
        t.create(f"{m}/a", b"A")
        t.create(f"{m}/s-", sequence=True)
        t.set_data(f"{s}/s-0000000000", b"new", version=0)
        t.check(f"{s}/s-0000000000", 1)
        t.delete(f"{m}/a")
        return t.commit()

    def txn_fail(c):
        t = c.transaction()
        t.create(f"{m}/b")
        t.delete(f"{m}/nope")
        t.create(f"{m}/c")
        return t.commit()

    r.op("A", "multi ok (kazoo)", txn_ok)
    r.op("A", "multi fail (kazoo)", txn_fail)
    r.op("A", f"getChildren {m}", lambda c: c.get_children(m))
    r.op(
        "A",
        "multi raw ok: create, create2, container-flag create, ttl, setData, check, delete",
        lambda c: raw_call(
            c,
            RawMulti(
                [
                    Create(f"{m}/r1", b"", OPEN, 0),
                    Create2(f"{m}/r2", b"22", OPEN, 0),
                    Create(f"{m}/r3", b"", OPEN, 4),
                    CreateTTL(f"{m}/r4", b"", OPEN, 5, 3_600_000),
                    CreateContainer(f"{m}/r5"),
                    SetData(f"{m}/r1", b"x", 0),
                    CheckVersion(f"{m}/r1", 1),
                    Delete(f"{m}/r2", -1),
                ]
            ),
        ),
    )
    r.op(
        "A",
        "multi raw fail at op 3",
        lambda c: raw_call(
            c,
            RawMulti(
                [
                    Create(f"{m}/r6", b"", OPEN, 0),
                    SetData(f"{m}/r1", b"y", -1),
                    CheckVersion(f"{m}/r1", 0),
                    Delete(f"{m}/r1", -1),
                ]
            ),
        ),
    )
    r.op("A", "multi raw fail: NodeExists first", lambda c: raw_call(c, RawMulti([Create(f"{m}/r1", b"", OPEN, 0), Create(f"{m}/r7", b"", OPEN, 0)])))
    r.op("A", "multi raw empty", lambda c: raw_call(c, RawMulti([])))
    r.op("A", f"getChildren2 {m}", lambda c: c.get_children(m, include_data=True))

    # --- ACLs
    a = f"{d}/acl"
    bob = make_digest_acl("bob", "secret", all=True)
    r.op("A", f"create {a} digest bob", lambda c: c.create(a, b"secret", acl=[bob, ACL(1, Id("world", "anyone"))]))
    r.op("B", f"set {a} (no auth)", lambda c: c.set(a, b"x"))
    r.op("B", f"getAcl {a} (masked)", lambda c: c.get_acls(a))
    r.op("B", "addAuth digest bob:secret", lambda c: c.add_auth("digest", "bob:secret"))
    r.op("B", f"set {a}", lambda c: c.set(a, b"x"))
    r.op("B", f"getAcl {a}", lambda c: c.get_acls(a))
    r.op("B", f"setAcl {a} v5", lambda c: c.set_acls(a, OPEN, version=5))
    r.op("B", f"setAcl {a} v0 read-only for bob", lambda c: c.set_acls(a, [make_digest_acl("bob", "secret", read=True)], version=0))
    r.op("B", f"getAcl {a} (now masked)", lambda c: c.get_acls(a))
    r.op("A", f"get {a}", lambda c: c.get(a))
    r.op("A", f"create {d}/bad-acl digest no colon", lambda c: c.create(f"{d}/bad-acl", acl=[ACL(31, Id("digest", "nocolon"))]))
    r.op("A", f"create {d}/bad-acl unknown scheme", lambda c: c.create(f"{d}/bad-acl", acl=[ACL(31, Id("foo", "bar"))]))
    r.op("A", f"create {d}/bad-acl empty list", lambda c: raw_call(c, RawCreate(f"{d}/bad-acl", b"", [], 0)))
    r.op("A", f"create {d}/bad-acl auth (no ids)", lambda c: c.create(f"{d}/bad-acl", acl=CREATOR_ALL_ACL))
    r.op("B", f"create {d}/mine auth", lambda c: c.create(f"{d}/mine", acl=CREATOR_ALL_ACL))
    r.op("B", f"getAcl {d}/mine", lambda c: c.get_acls(f"{d}/mine"))
    r.op("A", f"create {d}/ip ip:127.0.0.1", lambda c: c.create(f"{d}/ip", b"i", acl=[make_acl("ip", "127.0.0.1", all=True)]))
    r.op("B", f"get {d}/ip", lambda c: c.get(f"{d}/ip"))
    r.op("A", f"create {d}/far ip:10.0.0.1", lambda c: c.create(f"{d}/far", b"f", acl=[make_acl("ip", "10.0.0.1", all=True)]))
    r.op("B", f"get {d}/far", lambda c: c.get(f"{d}/far"))
    r.op("B", f"delete {d}/far (parent grants delete)", lambda c: c.delete(f"{d}/far"))
    r.op("B", "whoAmI", lambda c: raw_call(c, WhoAmI()))

    # --- containers and TTL nodes (the reaper runs every second)
    cont = f"{d}/cont"
    r.op("A", f"createContainer {cont}", lambda c: raw_call(c, CreateContainer(cont, b"c")))
    r.op("A", f"createContainer {d}/cont-unused", lambda c: raw_call(c, CreateContainer(f"{d}/cont-unused")))
    r.op("A", f"create {cont}/k", lambda c: c.create(f"{cont}/k"))
    r.watch_for_delete("A", cont)
    r.op("B", f"getChildren {d} watch", lambda c: c.get_children(d, watch=noop))
    r.op("A", f"delete {cont}/k", lambda c: c.delete(f"{cont}/k"))
    r.wait_deleted("A", cont)
    r.op("A", f"exists {cont}", lambda c: c.exists(cont))
    r.op("A", f"exists {d}/cont-unused", lambda c: c.exists(f"{d}/cont-unused"))
    r.op("A", f"createTTL {d}/ttl-long", lambda c: raw_call(c, CreateTTL(f"{d}/ttl-long", b"t", OPEN, 5, 3_600_000)))
    r.op("A", f"createTTL {d}/ttl-s- seq", lambda c: raw_call(c, CreateTTL(f"{d}/ttl-s-", b"", OPEN, 6, 3_600_000)))
    r.op("A", "createTTL ttl=0", lambda c: raw_call(c, CreateTTL(f"{d}/ttl0", b"", OPEN, 5, 0)))
    r.op("A", "createTTL flags=0", lambda c: raw_call(c, CreateTTL(f"{d}/ttlf", b"", OPEN, 0, 1000)))
    r.op("A", "createTTL ttl too big", lambda c: raw_call(c, CreateTTL(f"{d}/ttlbig", b"", OPEN, 5, 1 << 40)))
    r.op("A", f"createTTL {d}/ttl-short 300ms", lambda c: raw_call(c, CreateTTL(f"{d}/ttl-short", b"", OPEN, 5, 300)))
    r.watch_for_delete("A", f"{d}/ttl-short")
    r.wait_deleted("A", f"{d}/ttl-short")
    r.op("A", f"getChildren2 {d}", lambda c: c.get_children(d, include_data=True))

    # --- persistent and persistent-recursive watches (ZooKeeper 3.6+ addWatch)
    pw = f"{d}/pw"
    r.op("B", f"addWatch {pw} PERSISTENT (missing node)", lambda c: raw_call(c, AddWatch(pw, 0)))
    r.op("A", f"create {pw}", lambda c: c.create(pw))
    r.op("A", f"set {pw}", lambda c: c.set(pw, b"1"))
    r.op("A", f"set {pw} again", lambda c: c.set(pw, b"2"))
    r.op("A", f"create {pw}/c", lambda c: c.create(f"{pw}/c"))
    r.op("A", f"set {pw}/c (not watched)", lambda c: c.set(f"{pw}/c", b"x"))
    r.op("A", f"delete {pw}/c", lambda c: c.delete(f"{pw}/c"))
    rw = f"{d}/rw"
    r.op("B", f"addWatch {rw} PERSISTENT_RECURSIVE", lambda c: raw_call(c, AddWatch(rw, 1)))
    r.op("A", f"create {rw}", lambda c: c.create(rw))
    r.op("A", f"create {rw}/a", lambda c: c.create(f"{rw}/a"))
    r.op("A", f"create {rw}/a/b", lambda c: c.create(f"{rw}/a/b", b"b"))
    r.op("A", f"set {rw}/a/b", lambda c: c.set(f"{rw}/a/b", b"c"))
    r.op("A", f"delete {rw}/a/b", lambda c: c.delete(f"{rw}/a/b"))
    r.op("B", f"removeWatches {pw} Any(3)", lambda c: raw_call(c, RemoveWatches(pw, 3)))
    r.op("B", f"removeWatches {rw} Any(3)", lambda c: raw_call(c, RemoveWatches(rw, 3)))
    r.op("B", f"removeWatches {rw} Any(3) again", lambda c: raw_call(c, RemoveWatches(rw, 3)))
    r.op("A", f"create {rw}/after-removal", lambda c: c.create(f"{rw}/after-removal"))
    # Several watch modes on one (connection, path) are a known difference: ZooKeeper 3.8
    # keeps one mode and a later registration replaces it (ZOOKEEPER-4466, fixed upstream);
    # Corral keeps both. test_kazoo.py::test_watch_modes_on_one_path asserts each behaviour.
    # several registrations on one path -> one event per trigger
    mp = f"{d}/multi-watch"
    r.op("A", f"create {mp}", lambda c: c.create(mp))
    r.op("B", f"get {mp} watch", lambda c: c.get(mp, watch=noop))
    r.op("B", f"exists {mp} watch", lambda c: c.exists(mp, watch=noop))
    r.op("B", f"getChildren {mp} watch", lambda c: c.get_children(mp, watch=noop))
    r.op("B", f"getChildren {d} watch", lambda c: c.get_children(d, watch=noop))
    r.op("A", f"delete {mp}", lambda c: c.delete(mp))

    # --- sync and the end
    r.op("A", f"sync {d}", lambda c: c.sync(d))
    r.op("B", f"sync {d}/missing", lambda c: c.sync(f"{d}/missing"))
    r.close("B")
    r.op("A", "exists / (final zxid)", lambda c: c.exists("/"))
    r.close("A")


def run_against(kind: str, tmp_path_factory, label: str) -> list[str]:
    ensure_kind_available(kind)
    server = servers.start_server(kind, tmp_path_factory.mktemp(f"diff-{kind}-{label}"))
    run = Run(server)
    try:
        script(run)
    except BaseException as exc:
        partial = "\n".join(run.lines[-30:])
        raise AssertionError(
            f"differential script failed on {kind}: {exc!r}\n--- transcript tail ---\n{partial}\n"
            f"--- server log tail ---\n{server.log_tail()}"
        ) from exc
    finally:
        run.stop_all()
        server.stop()
    return run.lines


def diff(a: list[str], b: list[str], name_a: str, name_b: str) -> str:
    return "\n".join(difflib.unified_diff(a, b, name_a, name_b, lineterm="", n=4))


def test_differential_transcripts_match(tmp_path_factory):
    if os.environ.get("CORRAL_DIFF_SELFTEST") == "1":
        pair = ("zookeeper", "zookeeper")
    elif len(KIND_PARAMS) >= 2:
        pair = (KIND_PARAMS[0], KIND_PARAMS[1])
    else:
        pytest.skip(
            f"needs two kinds (CORRAL_COMPAT_TARGETS={','.join(KIND_PARAMS)}); "
            "set CORRAL_DIFF_SELFTEST=1 to run zookeeper against itself"
        )
    first = run_against(pair[0], tmp_path_factory, "1")
    second = run_against(pair[1], tmp_path_factory, "2")
    assert len(first) > 150, "the script should record well over 100 steps"
    if first != second:
        pytest.fail(
            f"transcripts differ ({pair[0]} vs {pair[1]}):\n"
            + diff(first, second, f"{pair[0]} (run 1)", f"{pair[1]} (run 2)"),
            pytrace=False,
        )


@pytest.mark.parametrize("kind", KIND_PARAMS)
def test_differential_matches_recorded_zookeeper(kind, tmp_path_factory):
    got = run_against(kind, tmp_path_factory, "golden")
    if os.environ.get("CORRAL_DIFF_RECORD") == "1" and kind == "zookeeper":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text("\n".join(got) + "\n")
    expected = GOLDEN.read_text().splitlines()
    if got != expected:
        pytest.fail(
            f"{kind} transcript differs from the one recorded from ZooKeeper 3.8 ({GOLDEN.name}):\n"
            + diff(expected, got, "zookeeper 3.8 (recorded)", kind),
            pytrace=False,
        )
