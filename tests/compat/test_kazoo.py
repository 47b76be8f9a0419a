"""Conformance of server semantics as seen through kazoo (python-zk), per server kind.

Every test owns the subtree given by the `base` fixture; one server is shared by the
module. Notifications are observed at the connection level with `zk.tap` (zkutil.Tap),
so ordering (event before reply) and server-side one-shot semantics are checked on
what actually came off the socket, not on kazoo's client-side bookkeeping.
"""

from __future__ import annotations

import re
import threading
import time

import pytest
from kazoo.exceptions import (
    AuthFailedError,
    BadArgumentsError,
    BadVersionError,
    InvalidACLError,
    MarshallingError,
    NoAuthError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    NoWatcherError,
    RolledBackError,
    RuntimeInconsistency,
    UnimplementedError,
)
from kazoo.protocol.states import ZnodeStat
from kazoo.security import (
    ACL,
    CREATOR_ALL_ACL,
    OPEN_ACL_UNSAFE,
    Id,
    make_acl,
    make_digest_acl,
)

from conftest import start_kind
from zkutil import (
    AddWatch,
    CheckVersion,
    CheckWatches,
    Create,
    Create2,
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
    WhoAmI,
    create_container,
    create_ttl,
    raw_call,
)

SUPER_DIGEST = "super:xQJmxLMiHGwaqBvst5y6rkB6HQs="  # super:admin
SERVER_OVERRIDES = {"DigestAuthenticationProvider.superDigest": SUPER_DIGEST}

BOB_HASH = "bob:fyVmFCwVbTJYrznoSu1koqYEYF0="  # digest of bob:secret


def noop(_event):
    pass


def shape(entries):
    """Tap entries -> compact list: 'reply' or 'Type path'."""
    return ["reply" if e[0] == "reply" else f"{e[1]} {e[2]}" for e in entries]


class Collector:
    """kazoo watch callback that records events and lets a test wait for them."""

    def __init__(self):
        self.events = []
        self._cond = threading.Condition()

    def __call__(self, event):
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait(self, count=1, timeout=10.0):
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.events) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} watch callbacks, got {self.events}")
                self._cond.wait(left)
            return list(self.events)


# ----------------------------------------------------------------------- create


def test_create_persistent_returns_path_and_stat(zk, base):
    parent_before = zk.exists(base)
    path, stat = zk.create(f"{base}/p", b"hello", include_data=True)
    assert path == f"{base}/p"
    assert stat.czxid == stat.mzxid == stat.pzxid
    assert stat.czxid > parent_before.czxid
    assert zk.tap.last_reply()[2] == stat.czxid, "create reply zxid is the create's zxid"
    assert stat.ctime == stat.mtime
    assert abs(stat.ctime / 1000 - time.time()) < 600
    assert (stat.version, stat.cversion, stat.aversion) == (0, 0, 0)
    assert stat.ephemeralOwner == 0
    assert (stat.dataLength, stat.numChildren) == (5, 0)
    assert zk.exists(path) == stat
    assert zk.get(path) == (b"hello", stat)

    parent = zk.exists(base)
    assert parent.cversion == parent_before.cversion + 1
    assert parent.pzxid == stat.czxid
    assert parent.numChildren == 1
    assert (parent.mzxid, parent.version) == (parent_before.mzxid, parent_before.version)

    # op 1 (no include_data) returns only the path
    assert zk.create(f"{base}/q") == f"{base}/q"
    with pytest.raises(NodeExistsError):
        zk.create(f"{base}/p")
    with pytest.raises(NoNodeError):
        zk.create(f"{base}/missing/x")


def test_create_ephemeral_is_owned_by_the_session(zk, base):
    path, stat = zk.create(f"{base}/e", b"x", ephemeral=True, include_data=True)
    assert path == f"{base}/e"
    assert stat.ephemeralOwner == zk.client_id[0] != 0
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(f"{path}/child")
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(f"{path}/s-", sequence=True)
    with pytest.raises(NodeExistsError):
        zk.create(f"{base}/e", ephemeral=True)


def test_standalone_session_ids_carry_server_id_1_in_top_byte(make_client):
    a = make_client()
    b = make_client()
    sa, sb = a.client_id[0], b.client_id[0]
    assert sa >> 56 == 1 and sb >> 56 == 1
    assert sa != sb
    assert len(a.client_id[1]) == 16


def test_sequential_suffix_is_parent_cversion_in_10_digits(zk, base):
    assert zk.create(f"{base}/s-", sequence=True) == f"{base}/s-0000000000"
    zk.create(f"{base}/plain")
    assert zk.create(f"{base}/s-", b"d", sequence=True) == f"{base}/s-0000000002"
    zk.delete(f"{base}/plain")
    # The suffix counts child CREATES only. The reported cversion counts creates and
    # deletes: ZooKeeper stores the create count and reports 2*creates - numChildren.
    assert zk.exists(base).cversion == 4
    # a different prefix shares the parent's counter; the delete did not advance it
    assert zk.create(f"{base}/other-", sequence=True) == f"{base}/other-0000000003"
    # the name may be nothing but the counter
    assert zk.create(f"{base}/", sequence=True) == f"{base}/0000000004"
    path, stat = zk.create(f"{base}/es-", ephemeral=True, sequence=True, include_data=True)
    assert path == f"{base}/es-0000000005"
    assert stat.ephemeralOwner == zk.client_id[0]
    parent = zk.exists(base)
    assert parent.cversion == 2 * 6 - 5
    assert parent.numChildren == 5
    assert parent.pzxid == stat.czxid
    zk.delete(f"{base}/s-0000000000")
    zk.delete(f"{base}/s-0000000002")
    zk.delete(f"{base}/other-0000000003")
    assert zk.exists(base).cversion == 2 * 6 - 2
    assert zk.create(f"{base}/s-", sequence=True) == f"{base}/s-0000000006"


def test_sequential_nodes_sort_in_creation_order(zk, base):
    created = [zk.create(f"{base}/n-", str(i).encode(), sequence=True) for i in range(12)]
    names = [p.rsplit("/", 1)[1] for p in created]
    assert all(re.fullmatch(r"n-\d{10}", n) for n in names), names
    assert names == sorted(names)
    assert [int(n[2:]) for n in names] == list(range(12))
    assert sorted(zk.get_children(base)) == names
    for i, p in enumerate(created):
        assert zk.get(p)[0] == str(i).encode()


def test_create_flags_outside_the_create_modes_are_bad_arguments(zk, base):
    acl = list(OPEN_ACL_UNSAFE)
    with pytest.raises(BadArgumentsError):
        raw_call(zk, RawCreate(f"{base}/f9", b"", acl, 9))
    with pytest.raises(BadArgumentsError):
        raw_call(zk, RawCreate2(f"{base}/f7", b"", acl, 7))
    assert zk.exists(f"{base}/f9") is None and zk.exists(f"{base}/f7") is None


def test_container_flag_outside_create_container_and_multi(zk, base):
    """flags=4 with op 1/15 makes a plain persistent node; inside a multi it makes a
    real container (the multi op is rebuilt from its flags). Only the reaper tells."""
    acl = list(OPEN_ACL_UNSAFE)
    path, stat = raw_call(zk, RawCreate2(f"{base}/c15", b"", acl, 4))
    assert path == f"{base}/c15" and stat.ephemeralOwner == 0
    assert raw_call(zk, RawCreate(f"{base}/c1", b"", acl, 4)) == f"{base}/c1"
    results = raw_call(zk, RawMulti([RawCreate(f"{base}/m1", b"", acl, 4)]))
    assert [(t, e) for t, e, _ in results] == [(15, 0)], "container result carries a Stat"
    assert results[0][2][0] == f"{base}/m1"
    for name in ("c15", "c1", "m1"):
        zk.create(f"{base}/{name}/kid")
        zk.delete(f"{base}/{name}/kid")
    mark = zk.tap.mark()
    for name in ("c15", "c1", "m1"):
        zk.exists(f"{base}/{name}", watch=noop)
    zk.tap.wait_event("NodeDeleted", f"{base}/m1", since=mark, timeout=20)
    # that sweep saw the two plain nodes too and left them alone
    assert zk.exists(f"{base}/c15") is not None and zk.exists(f"{base}/c1") is not None
    assert zk.tap.events(mark) == [("NodeDeleted", f"{base}/m1")]


def test_container_is_reaped_after_its_last_child_goes(zk, base):
    unused, ustat = create_container(zk, f"{base}/never-used")
    # clients see ephemeralOwner 0 for containers (the 0x8000... marker stays inside)
    assert ustat.ephemeralOwner == 0
    path, stat = create_container(zk, f"{base}/c", b"data")
    assert path == f"{base}/c"
    assert stat.ephemeralOwner == 0 and stat == zk.exists(path)
    assert stat.dataLength == 4
    with pytest.raises(NodeExistsError):
        create_container(zk, f"{base}/c")
    zk.create(f"{path}/child")
    gone = zk.tap.mark()
    zk.exists(path, watch=noop)
    zk.get_children(base, watch=noop)
    zk.delete(f"{path}/child")
    zk.tap.wait_event("NodeDeleted", path, since=gone, timeout=20)
    zk.tap.wait_event("NodeChildrenChanged", base, since=gone, timeout=5)
    assert zk.exists(path) is None
    # the sweep that removed /c also saw the never-used container and kept it
    assert zk.exists(unused) == ustat


def test_ttl_nodes_and_their_argument_checks(zk, base):
    # TTLs are long here on purpose: a node the reaper removes later would consume a
    # zxid in the middle of another test of this module
    path, stat = create_ttl(zk, f"{base}/t", 3_600_000, b"x")
    assert path == f"{base}/t"
    # clients see ephemeralOwner 0 for TTL nodes (the TTL stays inside the server)
    assert stat.ephemeralOwner == 0 and stat.dataLength == 1
    assert zk.exists(path) == stat
    spath, sstat = create_ttl(zk, f"{base}/ts-", 3_600_000, sequential=True)
    assert spath == f"{base}/ts-0000000001"
    assert sstat.ephemeralOwner == 0
    # children of a TTL node are allowed
    zk.create(f"{path}/kid")
    with pytest.raises(BadArgumentsError):
        create_ttl(zk, f"{base}/zero", 0)
    with pytest.raises(BadArgumentsError):
        create_ttl(zk, f"{base}/neg", -5)
    with pytest.raises(BadArgumentsError):
        create_ttl(zk, f"{base}/huge", 0xFF_FFFF_FFFF + 1)
    with pytest.raises(BadArgumentsError):  # op 21 with a non-TTL mode
        raw_call(zk, zkutil_create_ttl_with_flags(f"{base}/mode0", 0, 1000))
    for name in ("zero", "neg", "huge", "mode0"):
        assert zk.exists(f"{base}/{name}") is None


def zkutil_create_ttl_with_flags(path, flags, ttl):
    from zkutil import CreateTTL

    return CreateTTL(path, b"", list(OPEN_ACL_UNSAFE), flags, ttl)


def test_expired_ttl_node_is_removed(zk, base):
    path, _ = create_ttl(zk, f"{base}/short", 200)
    mark = zk.tap.mark()
    assert zk.exists(path, watch=noop) is not None
    zk.tap.wait_event("NodeDeleted", path, since=mark, timeout=20)
    assert zk.exists(path) is None


def test_ttl_needs_extended_types(zk_server, tmp_path_factory):
    server = start_kind(
        zk_server.kind, tmp_path_factory, "no-ext-types", {"extendedTypesEnabled": "false"}
    )
    try:
        from kazoo.client import KazooClient

        client = KazooClient(hosts=server.hosts, timeout=10)
        client.start(timeout=15)
        try:
            with pytest.raises(UnimplementedError):
                create_ttl(client, "/ttl", 60000)
            assert client.exists("/ttl") is None
            # containers do not depend on the flag
            assert create_container(client, "/cont")[0] == "/cont"
        finally:
            client.stop()
            client.close()
    finally:
        server.stop()


# -------------------------------------------------------------------- get / set


def test_get_and_set_with_versions(zk, base):
    path = f"{base}/n"
    zk.create(path, b"v0")
    data, st0 = zk.get(path)
    assert data == b"v0" and st0.version == 0

    st1 = zk.set(path, b"v1!", version=0)
    assert isinstance(st1, ZnodeStat)
    assert st1.version == 1 and st1.dataLength == 3
    assert st1.czxid == st0.czxid and st1.mzxid > st0.mzxid
    assert st1.pzxid == st0.pzxid and st1.ctime == st0.ctime and st1.mtime >= st0.mtime
    assert zk.tap.last_reply()[2] == st1.mzxid

    with pytest.raises(BadVersionError):
        zk.set(path, b"x", version=0)
    with pytest.raises(BadVersionError):
        zk.set(path, b"x", version=7)
    assert zk.get(path) == (b"v1!", st1)

    st2 = zk.set(path, b"", version=-1)
    assert st2.version == 2 and st2.dataLength == 0
    assert zk.get(path)[0] == b""
    with pytest.raises(NoNodeError):
        zk.set(f"{base}/missing", b"x")
    with pytest.raises(NoNodeError):
        zk.get(f"{base}/missing")
    # setData never touches the parent
    assert zk.exists(base).cversion == 1


def test_null_data_differs_from_empty_data(zk, base):
    zk.create(f"{base}/null", None)
    zk.create(f"{base}/empty", b"")
    data, st = zk.get(f"{base}/null")
    assert data is None and st.dataLength == 0
    assert zk.get(f"{base}/empty")[0] == b""
    zk.set(f"{base}/empty", None)
    assert zk.get(f"{base}/empty")[0] is None
    zk.set(f"{base}/null", b"now")
    assert zk.get(f"{base}/null")[0] == b"now"


def test_failed_writes_consume_a_zxid(zk, base):
    path = f"{base}/z"
    zk.create(path)
    z0 = zk.tap.last_reply()[2]
    with pytest.raises(BadVersionError):
        zk.set(path, b"x", version=9)
    assert zk.tap.last_reply()[2:] == (z0 + 1, -103)
    with pytest.raises(NodeExistsError):
        zk.create(path)
    assert zk.tap.last_reply()[2:] == (z0 + 2, -110)
    with pytest.raises(NoNodeError):
        zk.delete(f"{base}/nothing")
    assert zk.tap.last_reply()[2:] == (z0 + 3, -101)
    # reads report the last processed zxid and consume none
    zk.get(path)
    assert zk.tap.last_reply()[2:] == (z0 + 3, 0)
    zk.exists(f"{base}/nothing")
    assert zk.tap.last_reply()[2:] == (z0 + 3, -101)
    assert zk.create(f"{base}/next", include_data=True)[1].czxid == z0 + 4


# ------------------------------------------------------------------------ delete


def test_delete_versions_and_errors(zk, base):
    path = f"{base}/d"
    zk.create(path, b"x")
    zk.set(path, b"y")
    zk.create(f"{path}/kid")
    with pytest.raises(NotEmptyError):
        zk.delete(path)
    # the version is checked before emptiness
    with pytest.raises(BadVersionError):
        zk.delete(path, version=0)
    with pytest.raises(BadVersionError):
        zk.delete(f"{path}/kid", version=3)
    zk.delete(f"{path}/kid", version=0)
    assert zk.exists(path).cversion == 2
    zk.delete(path, version=1)
    delete_zxid = zk.tap.last_reply()[2]
    assert zk.exists(path) is None
    with pytest.raises(NoNodeError):
        zk.delete(path)
    with pytest.raises(NoNodeError):
        zk.delete(path, version=5)
    parent = zk.exists(base)
    assert (parent.cversion, parent.numChildren, parent.pzxid) == (2, 0, delete_zxid)


def test_reserved_nodes_cannot_be_deleted(zk):
    for path in ("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"):
        with pytest.raises(BadArgumentsError):
            raw_call(zk, RawDelete(path, -1))
        assert zk.exists(path) is not None


def test_invalid_paths(zk, base):
    """create looks up the parent (text before the last '/') BEFORE validating the
    path, so a malformed path whose parent does not exist reports NoNode."""
    acl = list(OPEN_ACL_UNSAFE)
    bad_arguments = ["relative", "", f"{base}/", f"{base}/.", f"{base}/..", f"{base}/a\x00b", f"{base}/\x01"]
    no_node = [f"{base}//x", f"{base}/./x", f"{base}/../x", f"{base}/missing/"]
    for bad in bad_arguments:
        with pytest.raises(BadArgumentsError):
            raw_call(zk, RawCreate(bad, b"", acl, 0))
    for bad in no_node:
        with pytest.raises(NoNodeError):
            raw_call(zk, RawCreate(bad, b"", acl, 0))
    # delete also looks up first; setData validates first
    with pytest.raises(NoNodeError):
        raw_call(zk, RawDelete(f"{base}//x", -1))
    with pytest.raises(BadArgumentsError):
        raw_call(zk, RawDelete("relative", -1))
    with pytest.raises(BadArgumentsError):
        raw_call(zk, RawSetData(f"{base}//x", b"", -1))
    with pytest.raises(BadArgumentsError):
        raw_call(zk, RawSetData(f"{base}/", b"", -1))
    # reads do no validation: a malformed path is simply not found...
    assert raw_call(zk, RawExists(f"{base}/")) is None
    assert raw_call(zk, RawExists("relative")) is None
    # ...except "", which is the root's key in ZooKeeper's node table
    assert raw_call(zk, RawExists("")) == zk.exists("/")
    assert zk.get_children(base) == []


# ------------------------------------------------------------- exists / children


def test_exists(zk, base):
    assert zk.exists(f"{base}/nope") is None
    stat = zk.exists(base)
    assert stat is not None and stat.numChildren == 0
    root = zk.exists("/")
    assert (root.czxid, root.ctime, root.ephemeralOwner) == (0, 0, 0)
    zk_node = zk.exists("/zookeeper")
    assert zk_node.czxid == 0 and zk_node.numChildren >= 2


def test_get_children_with_and_without_stat(zk, base):
    for name in ("b", "a", "c10", "c9"):
        zk.create(f"{base}/{name}")
    zk.create(f"{base}/a/deep")
    assert sorted(zk.get_children(base)) == ["a", "b", "c10", "c9"]
    children, stat = zk.get_children(base, include_data=True)
    assert sorted(children) == ["a", "b", "c10", "c9"]
    assert stat == zk.exists(base)
    assert stat.numChildren == 4 and stat.cversion == 4
    assert zk.get_children(f"{base}/b") == []
    with pytest.raises(NoNodeError):
        zk.get_children(f"{base}/missing")
    assert {"zookeeper"} <= set(zk.get_children("/"))
    assert sorted(zk.get_children("/zookeeper")) == ["config", "quota"]


# ----------------------------------------------------------------------- watches


def test_data_watch_fires_once_before_the_reply(zk, base):
    path = f"{base}/w"
    zk.create(path, b"0")
    cb = Collector()
    zk.get(path, watch=cb)
    mark = zk.tap.mark()
    zk.set(path, b"1")
    zk.set(path, b"2")  # the one-shot watch is gone
    zk.get(path, watch=noop)  # re-arm
    zk.set(path, b"3")
    assert shape(zk.tap.since(mark)) == [
        f"NodeDataChanged {path}",
        "reply",
        "reply",
        "reply",
        f"NodeDataChanged {path}",
        "reply",
    ]
    (event,) = cb.wait(1)
    assert (event.type, event.path, event.state) == ("CHANGED", path, "CONNECTED")
    assert zk.tap.since(mark)[0][3] == 3, "notifications carry KeeperState SyncConnected (3)"


def test_child_watch_fires_once_on_create_and_delete(zk, base):
    cb = Collector()
    assert zk.get_children(base, watch=cb) == []
    mark = zk.tap.mark()
    zk.create(f"{base}/k1")
    zk.create(f"{base}/k2")
    zk.get_children(base, watch=noop)
    zk.set(base, b"data change is not a child change")
    zk.delete(f"{base}/k1")
    assert shape(zk.tap.since(mark)) == [
        f"NodeChildrenChanged {base}",
        "reply",
        "reply",
        "reply",
        "reply",
        f"NodeChildrenChanged {base}",
        "reply",
    ]
    (event,) = cb.wait(1)
    assert (event.type, event.path) == ("CHILD", base)


def test_exists_watch_on_missing_node_fires_on_create(zk, make_client, base):
    path = f"{base}/later"
    cb = Collector()
    assert zk.exists(path, watch=cb) is None
    other = make_client()
    mark = zk.tap.mark()
    other.create(path, b"x")
    zk.tap.wait_event("NodeCreated", path, since=mark)
    (event,) = cb.wait(1)
    assert (event.type, event.path) == ("CREATED", path)
    other.set(path, b"y")
    zk.get(path, watch=noop)
    other.delete(path)
    zk.tap.wait_event("NodeDeleted", path, since=mark)
    assert zk.tap.events(mark) == [("NodeCreated", path), ("NodeDeleted", path)]


def test_failed_reads_leave_no_watch(zk, base):
    path = f"{base}/absent"
    with pytest.raises(NoNodeError):
        zk.get(path, watch=noop)
    with pytest.raises(NoNodeError):
        zk.get_children(path, watch=noop)
    mark = zk.tap.mark()
    zk.create(path)
    zk.create(f"{path}/kid")
    zk.exists(path, watch=noop)
    zk.delete(f"{path}/kid")
    zk.delete(path)
    assert shape(zk.tap.since(mark)) == ["reply", "reply", "reply", "reply", f"NodeDeleted {path}", "reply"]


def test_one_event_per_trigger_per_connection(zk, base):
    path = f"{base}/multi"
    zk.create(path)
    zk.get(path, watch=noop)
    zk.exists(path, watch=noop)
    zk.get_children(path, watch=noop)
    zk.get_children(base, watch=noop)
    mark = zk.tap.mark()
    zk.delete(path)
    # NodeDeleted once (data and child tables), then the parent's child event
    assert shape(zk.tap.since(mark)) == [f"NodeDeleted {path}", f"NodeChildrenChanged {base}", "reply"]
    zk.exists(path, watch=noop)
    zk.get_children(base, watch=noop)
    mark = zk.tap.mark()
    zk.create(path)
    assert shape(zk.tap.since(mark)) == [f"NodeCreated {path}", f"NodeChildrenChanged {base}", "reply"]


def test_events_reach_other_sessions(zk, make_client, base):
    writer = make_client(tap=True)
    path = f"{base}/x"
    zk.create(path, b"a")
    zk.get(path, watch=noop)
    wmark = writer.tap.mark()
    mark = zk.tap.mark()
    writer.set(path, b"b")
    zk.tap.wait_event("NodeDataChanged", path, since=mark)
    assert shape(writer.tap.since(wmark)) == ["reply"], "the writer holds no watch"
    # the watcher sees the event before any later reply on its own connection
    zk.sync(base)
    assert shape(zk.tap.since(mark)) == [f"NodeDataChanged {path}", "reply"]


def test_ephemerals_vanish_when_their_session_closes(zk, make_client, base):
    owner = make_client(tap=True)
    e1 = owner.create(f"{base}/e1", ephemeral=True)
    e2 = owner.create(f"{base}/s-", ephemeral=True, sequence=True)
    keep = owner.create(f"{base}/keep")
    assert sorted(zk.get_children(base)) == ["e1", "keep", "s-0000000001"]
    cb = Collector()
    zk.exists(e1, watch=cb)
    zk.get_children(base, watch=noop)
    omark = owner.tap.mark()
    owner.exists(e2, watch=noop)
    mark = zk.tap.mark()
    owner.stop()
    zk.tap.wait_event("NodeDeleted", e1, since=mark)
    zk.tap.wait_event("NodeChildrenChanged", base, since=mark)
    assert zk.tap.events(mark) == [("NodeDeleted", e1), ("NodeChildrenChanged", base)]
    assert (cb.wait(1)[0].type, cb.events[0].path) == ("DELETED", e1)
    assert zk.exists(e1) is None and zk.exists(e2) is None
    assert zk.get_children(base) == ["keep"] and keep == f"{base}/keep"
    # one closeSession txn removed both: parent pzxid is a single zxid, cversion +2
    parent = zk.exists(base)
    assert parent.cversion == 5
    assert parent.pzxid == zk.tap.last_reply()[2]
    # the closing session itself got its watch event before the close reply
    owner_seen = shape(owner.tap.since(omark))
    assert owner_seen == ["reply", f"NodeDeleted {e2}", "reply"], owner_seen


# ------------------------------------------------------------------ transactions


def test_transaction_success_applies_all_ops_at_one_zxid(zk, base):
    zk.create(f"{base}/x", b"0")
    t = zk.transaction()
    t.create(f"{base}/a", b"A")
    t.set_data(f"{base}/x", b"1", version=0)
    t.check(f"{base}/x", 1)  # sees the set_data above
    t.create(f"{base}/s-", sequence=True)
    t.delete(f"{base}/a")
    results = t.commit()
    zxid = zk.tap.last_reply()[2]
    assert results[0] == f"{base}/a"
    assert isinstance(results[1], ZnodeStat) and results[1].version == 1
    assert results[1].mzxid == zxid
    assert results[2:] == [True, f"{base}/s-0000000002", True]
    assert zk.exists(f"{base}/a") is None
    assert zk.exists(f"{base}/s-0000000002").czxid == zxid
    parent = zk.exists(base)
    assert (parent.cversion, parent.pzxid, parent.numChildren) == (4, zxid, 2)


def test_transaction_failure_applies_nothing(zk, base):
    zk.create(f"{base}/x", b"0")
    before = zk.tap.last_reply()[2]
    t = zk.transaction()
    t.create(f"{base}/b")
    t.check(f"{base}/x", 7)
    t.create(f"{base}/c")
    results = t.commit()
    assert [type(r) for r in results] == [RolledBackError, BadVersionError, RuntimeInconsistency]
    assert zk.tap.last_reply()[2:] == (before + 1, 0), "multi reply err is 0; it used a zxid"
    assert zk.get_children(base) == ["x"]
    assert zk.exists(base).cversion == 1

    t = zk.transaction()
    t.delete(f"{base}/x")
    t.create(f"{base}/x/under-deleted")
    results = t.commit()
    assert [type(r) for r in results] == [RolledBackError, NoNodeError]
    assert zk.exists(f"{base}/x") is not None


def test_multi_results_per_op_on_the_wire(zk, base):
    acl = list(OPEN_ACL_UNSAFE)
    zk.create(f"{base}/x", b"0")
    ok = raw_call(
        zk,
        RawMulti(
            [
                Create(f"{base}/a", b"", acl, 0),
                Create2(f"{base}/b", b"bb", acl, 0),
                SetData(f"{base}/x", b"1", -1),
                CheckVersion(f"{base}/x", 1),
                Delete(f"{base}/a", -1),
            ]
        ),
    )
    zxid = zk.tap.last_reply()[2]
    # a create2 inside a multi is answered like a plain create (type 1, path only)
    assert [(t, e) for t, e, _ in ok] == [(1, 0), (1, 0), (5, 0), (13, 0), (2, 0)]
    assert ok[0][2] == f"{base}/a"
    assert ok[1][2] == f"{base}/b"
    assert zk.exists(f"{base}/b").czxid == zxid
    assert ok[2][2].version == 1 and ok[2][2].mzxid == zxid

    failed = raw_call(
        zk,
        RawMulti(
            [
                SetData(f"{base}/x", b"2", -1),
                Create(f"{base}/b", b"", acl, 0),
                Delete(f"{base}/x", -1),
                CheckVersion(f"{base}/x", 0),
            ]
        ),
    )
    assert failed == [(-1, 0, None), (-1, -110, None), (-1, -2, None), (-1, -2, None)]
    assert zk.get(f"{base}/x")[1].version == 1
    assert raw_call(zk, RawMulti([])) == []


# -------------------------------------------------------------------------- ACLs


def test_digest_acl_needs_auth(zk, make_client, base):
    acl = [make_digest_acl("bob", "secret", all=True)]
    assert acl[0].id == Id("digest", BOB_HASH)
    path = f"{base}/secret"
    zk.create(path, b"s3", acl=acl)  # creating needs no auth; only the parent's ACL counts
    stranger = make_client()
    with pytest.raises(NoAuthError):
        stranger.get(path)
    with pytest.raises(NoAuthError):
        stranger.set(path, b"x")
    with pytest.raises(NoAuthError):
        stranger.create(f"{path}/kid")
    assert stranger.exists(path) is not None, "exists needs no permission"
    # getACL needs READ or ADMIN
    with pytest.raises(NoAuthError):
        stranger.get_acls(path)
    stranger.add_auth("digest", "bob:secret")
    assert stranger.get(path)[0] == b"s3"
    stranger.set(path, b"new")
    acls, stat = stranger.get_acls(path)
    assert acls == acl and stat.aversion == 0 and stat.version == 1
    wrong = make_client(auth=[("digest", "bob:wrong")])
    with pytest.raises(NoAuthError):
        wrong.get(path)


def test_get_acl_masks_digest_ids_without_admin(zk, make_client, base):
    path = f"{base}/masked"
    acl = [make_digest_acl("bob", "secret", read=True, write=True), ACL(1, Id("world", "anyone"))]
    zk.create(path, acl=acl)
    acls, _ = zk.get_acls(path)
    assert acls == [ACL(3, Id("digest", "bob:x")), ACL(1, Id("world", "anyone"))]
    full = f"{base}/admin"
    acl2 = [make_digest_acl("bob", "secret", all=True), ACL(1, Id("world", "anyone"))]
    zk.create(full, acl=acl2)
    assert zk.get_acls(full)[0] == [ACL(31, Id("digest", "bob:x")), ACL(1, Id("world", "anyone"))]
    bob = make_client(auth=[("digest", "bob:secret")])
    assert bob.get_acls(full)[0] == acl2
    assert bob.get_acls(path)[0] == [ACL(3, Id("digest", "bob:x")), ACL(1, Id("world", "anyone"))]


def test_auth_scheme_acl_expands_to_the_callers_ids(zk, make_client, base):
    with pytest.raises(InvalidACLError):
        zk.create(f"{base}/noauth", acl=CREATOR_ALL_ACL)
    bob = make_client(auth=[("digest", "bob:secret")])
    bob.create(f"{base}/mine", acl=CREATOR_ALL_ACL)
    acls, _ = bob.get_acls(f"{base}/mine")
    assert acls == [ACL(31, Id("digest", BOB_HASH))]
    with pytest.raises(NoAuthError):
        zk.get(f"{base}/mine")


def test_invalid_acls_are_rejected(zk, base):
    bad_acls = [
        [ACL(31, Id("digest", "no-colon"))],
        [ACL(31, Id("nosuchscheme", "x"))],
        [ACL(31, Id("ip", "not-an-ip"))],
        [ACL(31, Id("world", "someone"))],
    ]
    for i, acl in enumerate(bad_acls):
        with pytest.raises(InvalidACLError):
            zk.create(f"{base}/bad{i}", acl=acl)
    with pytest.raises(InvalidACLError):  # empty list (kazoo would substitute its default)
        raw_call(zk, RawCreate(f"{base}/empty", b"", [], 0))
    zk.create(f"{base}/ok")
    with pytest.raises(InvalidACLError):
        zk.set_acls(f"{base}/ok", [ACL(31, Id("digest", "no-colon"))])
    assert zk.get_children(base) == ["ok"]


def test_set_acl_versions_and_admin(zk, make_client, base):
    path = f"{base}/a"
    zk.create(path)
    st = zk.set_acls(path, [ACL(31 & ~16, Id("world", "anyone"))], version=0)
    assert st.aversion == 1 and st.version == 0
    with pytest.raises(NoAuthError):  # ADMIN is gone
        zk.set_acls(path, list(OPEN_ACL_UNSAFE))
    zk.create(f"{base}/b")
    with pytest.raises(BadVersionError):
        zk.set_acls(f"{base}/b", list(OPEN_ACL_UNSAFE), version=3)
    # duplicates collapse
    zk.set_acls(f"{base}/b", [ACL(31, Id("world", "anyone")), ACL(31, Id("world", "anyone"))])
    assert zk.get_acls(f"{base}/b")[0] == [ACL(31, Id("world", "anyone"))]


def test_ip_acl_matches_loopback(zk, make_client, base):
    zk.create(f"{base}/lo", b"ok", acl=[make_acl("ip", "127.0.0.1", all=True)])
    other = make_client()
    assert other.get(f"{base}/lo")[0] == b"ok"
    other.set(f"{base}/lo", b"still ok")
    zk.create(f"{base}/net", b"ok", acl=[make_acl("ip", "127.0.0.0/8", read=True)])
    assert other.get(f"{base}/net")[0] == b"ok"
    zk.create(f"{base}/far", b"no", acl=[make_acl("ip", "10.1.2.3", all=True)])
    with pytest.raises(NoAuthError):
        other.get(f"{base}/far")
    assert zk.get_acls(f"{base}/lo")[0] == [ACL(31, Id("ip", "127.0.0.1"))]


def test_super_digest_bypasses_acls(zk, make_client, base):
    path = f"{base}/locked"
    zk.create(path, b"x", acl=[make_acl("ip", "10.1.2.3", all=True)])
    admin = make_client(auth=[("digest", "super:admin")])
    assert admin.get(path)[0] == b"x"
    admin.set_acls(path, list(OPEN_ACL_UNSAFE))
    assert zk.get(path)[0] == b"x"


def test_unknown_auth_scheme_is_auth_failed(make_client):
    # (the server then closes the connection: see test_wire.py)
    client = make_client()
    with pytest.raises(AuthFailedError):
        client.add_auth("nosuchscheme", "whatever")


def test_who_am_i(zk, make_client):
    assert raw_call(zk, WhoAmI()) == [("ip", "127.0.0.1")]
    bob = make_client(auth=[("digest", "bob:secret")])
    assert raw_call(bob, WhoAmI()) == [("digest", "bob"), ("ip", "127.0.0.1")]


# -------------------------------------------------------- sync, misc 3.6+ ops


def test_sync_echoes_path_and_orders_reads(zk, make_client, base):
    other = make_client()
    other.create(f"{base}/fresh", b"v")
    assert zk.sync(base) == base
    assert zk.get(f"{base}/fresh")[0] == b"v"
    assert zk.sync(f"{base}/does-not-exist") == f"{base}/does-not-exist"


def test_get_ephemerals_and_all_children_number(zk, make_client, base):
    owner = make_client()
    owner.create(f"{base}/sub/deeper", makepath=True)
    e1 = owner.create(f"{base}/e1", ephemeral=True)
    e2 = owner.create(f"{base}/sub/e2", ephemeral=True)
    zk.create(f"{base}/zk-eph", ephemeral=True)
    assert sorted(raw_call(owner, GetEphemerals(base))) == [e1, e2]
    assert raw_call(owner, GetEphemerals(f"{base}/su")) == [e2], "plain string prefix match"
    assert sorted(p for p in raw_call(owner, GetEphemerals("/")) if p.startswith(base)) == [e1, e2]
    assert raw_call(zk, GetEphemerals(f"{base}/")) == [f"{base}/zk-eph"]
    assert raw_call(zk, GetAllChildrenNumber(base)) == 5
    assert raw_call(zk, GetAllChildrenNumber(f"{base}/sub/deeper")) == 0
    with pytest.raises(NoNodeError):
        raw_call(zk, GetAllChildrenNumber(f"{base}/nope"))


def test_persistent_watch_survives_triggers(zk, base, zk_server):
    path = f"{base}/p"
    zk.create(path)
    assert raw_call(zk, AddWatch(path, 0)) == 0
    mark = zk.tap.mark()
    zk.set(path, b"1")
    zk.set(path, b"2")
    zk.create(f"{path}/kid")
    zk.set(f"{path}/kid", b"not watched")
    zk.delete(f"{path}/kid")
    assert shape(zk.tap.since(mark)) == [
        f"NodeDataChanged {path}",
        "reply",
        f"NodeDataChanged {path}",
        "reply",
        f"NodeChildrenChanged {path}",
        "reply",
        "reply",
        f"NodeChildrenChanged {path}",
        "reply",
    ]
    assert raw_call(zk, CheckWatches(path, 3)) is True
    if zk_server.kind == "zookeeper":
        # ZooKeeper 3.8.0 cannot decode WatcherType 4/5 (Persistent/PersistentRecursive) in
        # check/removeWatches: the request fails with MarshallingError, connection stays up.
        for wtype in (4, 5):
            with pytest.raises(MarshallingError):
                raw_call(zk, CheckWatches(path, wtype))
            with pytest.raises(MarshallingError):
                raw_call(zk, RemoveWatches(path, wtype))
    else:
        # Known difference (KNOWN_DIFFERENCES in README.md): Corral accepts the persistent
        # watcher types as ZooKeeper does since ZOOKEEPER-4472: type 4 names this watch,
        # type 5 (recursive) does not.
        assert raw_call(zk, CheckWatches(path, 4)) is True
        with pytest.raises(NoWatcherError):
            raw_call(zk, CheckWatches(path, 5))
        with pytest.raises(NoWatcherError):
            raw_call(zk, RemoveWatches(path, 5))
    assert raw_call(zk, RemoveWatches(path, 3)) is True
    with pytest.raises(NoWatcherError):
        raw_call(zk, RemoveWatches(path, 3))
    mark = zk.tap.mark()
    zk.set(path, b"3")
    assert shape(zk.tap.since(mark)) == ["reply"]


def test_persistent_recursive_watch_sees_descendants_not_child_events(zk, base):
    root = f"{base}/r"
    zk.create(root)
    assert raw_call(zk, AddWatch(root, 1)) == 0
    mark = zk.tap.mark()
    zk.create(f"{root}/a")
    zk.create(f"{root}/a/b", b"x")
    zk.set(f"{root}/a/b", b"y")
    zk.delete(f"{root}/a/b")
    zk.set(root, b"z")
    zk.create(f"{base}/outside")
    assert zk.tap.events(mark) == [
        ("NodeCreated", f"{root}/a"),
        ("NodeCreated", f"{root}/a/b"),
        ("NodeDataChanged", f"{root}/a/b"),
        ("NodeDeleted", f"{root}/a/b"),
        ("NodeDataChanged", root),
    ]
    with pytest.raises(NoWatcherError):
        raw_call(zk, RemoveWatches(f"{root}/a", 3))
    assert raw_call(zk, RemoveWatches(root, 3)) is True
    mark = zk.tap.mark()
    zk.create(f"{root}/c")
    assert zk.tap.events(mark) == []


def test_watch_modes_on_one_path(zk, base, zk_server):
    """A known difference, asserted for both kinds. ZooKeeper 3.8 keeps one watch mode per
    (connection, path) and a later registration replaces the earlier one (ZOOKEEPER-4466,
    fixed in later ZooKeeper); Corral keeps every mode, as fixed ZooKeeper does."""
    q1 = f"{base}/q1"
    zk.create(q1)
    zk.get_children(q1, watch=lambda e: None)
    assert raw_call(zk, AddWatch(q1, 1)) == 0
    mark = zk.tap.mark()
    zk.create(f"{q1}/a")
    events = zk.tap.events(mark)
    if zk_server.kind == "zookeeper":
        assert events == [("NodeCreated", f"{q1}/a")], "the child watch was replaced"
    else:
        assert events == [("NodeCreated", f"{q1}/a"), ("NodeChildrenChanged", q1)]

    q2 = f"{base}/q2"
    zk.create(q2)
    assert raw_call(zk, AddWatch(q2, 1)) == 0
    zk.get(q2, watch=lambda e: None)
    mark = zk.tap.mark()
    zk.set(q2, b"1")
    zk.set(q2, b"2")
    zk.create(f"{q2}/kid")
    events = zk.tap.events(mark)
    if zk_server.kind == "zookeeper":
        assert events == [("NodeDataChanged", q2)], "the recursive watch was replaced"
    else:
        assert events == [
            ("NodeDataChanged", q2),
            ("NodeDataChanged", q2),
            ("NodeCreated", f"{q2}/kid"),
        ]


def test_add_watch_on_missing_node_is_allowed(zk, base):
    path = f"{base}/not-yet"
    assert raw_call(zk, AddWatch(path, 0)) == 0
    mark = zk.tap.mark()
    zk.create(path)
    zk.delete(path)
    assert zk.tap.events(mark) == [("NodeCreated", path), ("NodeDeleted", path)]


# ---------------------------------------------------------------- four letter words


def parse_mntr(text):
    out = {}
    for line in text.splitlines():
        if line:
            key, _, value = line.partition("\t")
            out[key] = value
    return out


def count_nodes(client, path="/"):
    total = 1
    for child in client.get_children(path):
        total += count_nodes(client, (path.rstrip("/") + "/" + child))
    return total


def test_four_letter_words(zk, zk_server):
    assert zk.command(b"ruok") == "imok"
    assert zk.command(b"isro") == "rw"
    srvr = zk.command(b"srvr")
    assert re.search(r"^Zookeeper version: \S", srvr, re.M), srvr
    assert "Mode: standalone\n" in srvr
    assert re.search(r"^Zxid: 0x[0-9a-f]+$", srvr, re.M)
    assert re.search(r"^Latency min/avg/max: \d+/[\d.]+/\d+$", srvr, re.M)
    assert re.search(r"^Connections: \d+$", srvr, re.M)
    conf = zk.command(b"conf")
    assert f"clientPort={zk_server.port}\n" in conf
    assert "tickTime=2000\n" in conf
    assert "maxClientCnxns=60\n" in conf
    assert "minSessionTimeout=4000\n" in conf and "maxSessionTimeout=40000\n" in conf
    # kazoo reads a 4lw reply with ONE recv(8192): the keys must come early
    head = parse_mntr(zk.command(b"mntr"))
    assert head["zk_server_state"] == "standalone"
    assert int(head["zk_znode_count"]) > 0
    assert zk_server.four_letter("wchs").splitlines()[1].startswith("Total watches:")
    assert zk_server.four_letter("envi").startswith("Environment:\n")
    assert "Mode: standalone" in zk_server.four_letter("stat")


def test_mntr_znode_count_counts_the_root_twice(make_client, zk_server):
    admin = make_client(auth=[("digest", "super:admin")])  # reads through any ACL
    for _ in range(5):
        before = count_nodes(admin)
        mntr = parse_mntr(zk_server.four_letter("mntr"))
        after = count_nodes(admin)
        if before == after:
            break
    else:
        pytest.fail("tree kept changing while counting")
    assert int(mntr["zk_znode_count"]) == before + 1
    srvr = zk_server.four_letter("srvr")
    assert f"Node count: {before + 1}\n" in srvr
    assert int(mntr["zk_ephemerals_count"]) >= 0


def test_auth_ids_come_in_java_hash_order(make_client, base):
    """A connection's auth ids live in a Java hash set: whoAmI and the expansion of an
    `auth` ACL list them in bucket order of Id.hashCode(), not in the order added."""
    wrong_hash = "bob:7e5oQdf4IqOAJ9OLk9OTl5I4cwM="  # digest of bob:wrong
    client = make_client(auth=[("digest", "bob:wrong"), ("digest", "bob:secret")])
    assert raw_call(client, WhoAmI()) == [("digest", "bob"), ("digest", "bob"), ("ip", "127.0.0.1")]
    client.create(f"{base}/two", acl=CREATOR_ALL_ACL)
    acls, _ = client.get_acls(f"{base}/two")
    assert acls == [ACL(31, Id("digest", BOB_HASH)), ACL(31, Id("digest", wrong_hash))]
