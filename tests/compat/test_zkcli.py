"""Scripted zkCli (Apache ZooKeeper 3.8 ZooKeeperMain) sessions, per server kind.

Each scenario is fed to zkCli on stdin against the module's server, normalised by
zkcli.normalise and compared with the golden transcript recorded from Apache ZooKeeper
3.8.0 (Debian). When more than one kind runs, the normalised transcripts of the kinds
are also compared with each other (the second kind to run a scenario does that).

To re-record a golden transcript, run with CORRAL_ZKCLI_PRINT=1 -s against zookeeper
and paste the printed block after reviewing it.
"""
from __future__ import annotations

import difflib
import os

import pytest

import servers
from conftest import KIND_PARAMS, start_kind
from zkcli import normalise, run_zkcli, zkcli_unavailable_reason

SERVER_OVERRIDES = {"DigestAuthenticationProvider.superDigest": "super:xQJmxLMiHGwaqBvst5y6rkB6HQs="}

SCENARIOS: dict[str, str] = {}
EXPECTED: dict[str, str] = {}
EXPECTED_EVENTS: dict[str, list[str]] = {}

# --- create_modes: create -s/-e/-c/-t and their client- and server-side errors; null vs empty data; Stat printing.
SCENARIOS["create_modes"] = """\
create /cli-create
stat /cli-create
create /cli-create/p data
create -s /cli-create/p/s- one
create -s /cli-create/p/s- two
create -e /cli-create/p/e eph
create -s -e /cli-create/p/es- x
create -c /cli-create/c
create -t 60000 /cli-create/ttl t
create -s -t 60000 /cli-create/ttls- t
create -c -s /cli-create/bad
create -t 0 /cli-create/ttl0
create -t abc /cli-create/ttlabc
create -c -t 100 /cli-create/ct
create /cli-create/p/e/child
create -s /cli-create/p/e/child
create /cli-create/nope/x
create /cli-create/p
create cli-create/relative
create /cli-create/trailing/
create /cli-create//dbl
create /cli-create/./dot
create /cli-create/nodata
create /cli-create/empty ""
get /cli-create/nodata
get /cli-create/empty
get /cli-create/p
stat /cli-create/p/e
stat /cli-create/c
stat /cli-create/ttl
stat /cli-create/p
ls /cli-create/p
ls -s /cli-create
create /zookeeper/cli-create
delete /zookeeper/cli-create
quit
"""

EXPECTED["create_modes"] = """\
Connecting to <server>
Welcome to ZooKeeper!
JLine support is disabled
Created /cli-create
cZxid = Z+0
ctime = <time>
mZxid = Z+0
mtime = <time>
pZxid = Z+0
cversion = 0
dataVersion = 0
aclVersion = 0
ephemeralOwner = 0x0
dataLength = 0
numChildren = 0
Created /cli-create/p
Created /cli-create/p/s-0000000000
Created /cli-create/p/s-0000000001
Created /cli-create/p/e
Created /cli-create/p/es-0000000003
Created /cli-create/c
Created /cli-create/ttl
Created /cli-create/ttls-0000000003
-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential.
ttl must be positive and cannot be larger than: 1099511627775
-t argument must be a long value
TTLs cannot be used with Container znodes
Ephemerals cannot have children: /cli-create/p/e/child
Ephemerals cannot have children: /cli-create/p/e/child
Node does not exist: /cli-create/nope/x
Node already exists: /cli-create/p
Path must start with / character
Path must not end with / character
Invalid path string "/cli-create//dbl" caused by empty node name specified @12
Invalid path string "/cli-create/./dot" caused by relative paths not allowed @12
Created /cli-create/nodata
Created /cli-create/empty
null
data
cZxid = Z+4
ctime = <time>
mZxid = Z+4
mtime = <time>
pZxid = Z+4
cversion = 0
dataVersion = 0
aclVersion = 0
ephemeralOwner = <session#1>
dataLength = 3
numChildren = 0
cZxid = Z+6
ctime = <time>
mZxid = Z+6
mtime = <time>
pZxid = Z+6
cversion = 0
dataVersion = 0
aclVersion = 0
ephemeralOwner = 0x0
dataLength = 0
numChildren = 0
cZxid = Z+7
ctime = <time>
mZxid = Z+7
mtime = <time>
pZxid = Z+7
cversion = 0
dataVersion = 0
aclVersion = 0
ephemeralOwner = 0x0
dataLength = 1
numChildren = 0
cZxid = Z+1
ctime = <time>
mZxid = Z+1
mtime = <time>
pZxid = Z+5
cversion = 4
dataVersion = 0
aclVersion = 0
ephemeralOwner = 0x0
dataLength = 4
numChildren = 4
[e, es-0000000003, s-0000000000, s-0000000001]
[c, empty, nodata, p, ttl, ttls-0000000003]
cZxid = Z+0
ctime = <time>
mZxid = Z+0
mtime = <time>
pZxid = Z+14
cversion = 6
dataVersion = 0
aclVersion = 0
ephemeralOwner = 0x0
dataLength = 0
numChildren = 6
Created /zookeeper/cli-create
[exit 0]
"""

EXPECTED_EVENTS["create_modes"] = [
    'None null (SyncConnected)',
    'None null (Closed)',
]


# --- read_write: get/set/stat/ls/delete/deleteall with versions, and the error lines for each.
SCENARIOS["read_write"] = """\
create /cli-rw v0
stat /cli-rw
get -s /cli-rw
set /cli-rw v1
set -v 1 /cli-rw v2
set -v 1 /cli-rw v3
set -s -v 2 /cli-rw v3
set /cli-rw/missing x
get /cli-rw/missing
get -s /cli-rw/missing
stat /cli-rw/missing
create /cli-rw/a 1
create /cli-rw/b 2
create /cli-rw/a/x 3
ls /cli-rw
ls -R /cli-rw
ls -s /cli-rw/a
ls /cli-rw/missing
delete /cli-rw/a
delete -v 5 /cli-rw/b
delete -v 0 /cli-rw/b
delete /cli-rw/b
delete /cli-rw/missing
deleteall /cli-rw/a
deleteall /cli-rw/missing
ls /cli-rw
delete /
delete /zookeeper
set /cli-rw
quit
"""

EXPECTED["read_write"] = """\
Connecting to <server>
Welcome to ZooKeeper!
JLine support is disabled
Created /cli-rw
cZxid = Z+0
ctime = <time>
mZxid = Z+0
mtime = <time>
pZxid = Z+0
cversion = 0
dataVersion = 0
aclVersion = 0
ephemeralOwner = 0x0
dataLength = 2
numChildren = 0
v0
cZxid = Z+0
ctime = <time>
mZxid = Z+0
mtime = <time>
pZxid = Z+0
cversion = 0
dataVersion = 0
aclVersion = 0
ephemeralOwner = 0x0
dataLength = 2
numChildren = 0
version No is not valid : /cli-rw
cZxid = Z+0
ctime = <time>
mZxid = Z+4
mtime = <time>
pZxid = Z+0
cversion = 0
dataVersion = 3
aclVersion = 0
ephemeralOwner = 0x0
dataLength = 2
numChildren = 0
Node does not exist: /cli-rw/missing
Node does not exist: /cli-rw/missing
Node does not exist: /cli-rw/missing
Node does not exist: /cli-rw/missing
Created /cli-rw/a
Created /cli-rw/b
Created /cli-rw/a/x
[a, b]
/cli-rw
/cli-rw/a
/cli-rw/b
/cli-rw/a/x
[x]
cZxid = Z+6
ctime = <time>
mZxid = Z+6
mtime = <time>
pZxid = Z+8
cversion = 1
dataVersion = 0
aclVersion = 0
ephemeralOwner = 0x0
dataLength = 1
numChildren = 1
Node does not exist: /cli-rw/missing
Node not empty: /cli-rw/a
version No is not valid : /cli-rw/b
Node does not exist: /cli-rw/b
Node does not exist: /cli-rw/missing
Node does not exist: /cli-rw/missing
[]
Arguments are not valid : /
Arguments are not valid : /zookeeper
set [-s] [-v version] path data
[exit 1]
"""

EXPECTED_EVENTS["read_write"] = [
    'None null (SyncConnected)',
    'None null (Closed)',
]


# --- watches: get -w, ls -w, ls -R -w, stat -w, addWatch (both modes), removewatches; events in order.
# The recursive watch goes on a path without other watches of the same connection: mixing modes
# on one path is a known difference (ZOOKEEPER-4466; see test_kazoo.test_watch_modes_on_one_path).
SCENARIOS["watches"] = """\
create /cli-w
stat /cli-w
create /cli-w/d 0
get -w /cli-w/d
set /cli-w/d 1
set /cli-w/d 2
get -s -w /cli-w/d
delete /cli-w/d
ls -w /cli-w
create /cli-w/k
create /cli-w/k2
ls -s -w /cli-w
delete /cli-w/k
stat -w /cli-w/later
create /cli-w/later
stat -w /cli-w/later
set /cli-w/later x
ls -R -w /cli-w
addWatch /cli-w/later
set /cli-w/later y
set /cli-w/later z
removewatches /cli-w/later
removewatches /cli-w/later
create /cli-wr
addWatch -m PERSISTENT_RECURSIVE /cli-wr
create /cli-wr/r
create /cli-wr/r/deep
set /cli-wr/r/deep q
removewatches /cli-wr -a
get -w /cli-wr/r
set /cli-wr/r fired
set /cli-wr/r quiet
quit
"""

EXPECTED["watches"] = """\
Connecting to <server>
Welcome to ZooKeeper!
JLine support is disabled
Created /cli-w
cZxid = Z+0
ctime = <time>
mZxid = Z+0
mtime = <time>
pZxid = Z+0
cversion = 0
dataVersion = 0
aclVersion = 0
ephemeralOwner = 0x0
dataLength = 0
numChildren = 0
Created /cli-w/d
0
2
cZxid = Z+1
ctime = <time>
mZxid = Z+3
mtime = <time>
pZxid = Z+1
cversion = 0
dataVersion = 2
aclVersion = 0
ephemeralOwner = 0x0
dataLength = 1
numChildren = 0
[]
Created /cli-w/k
Created /cli-w/k2
[k, k2]
cZxid = Z+0
ctime = <time>
mZxid = Z+0
mtime = <time>
pZxid = Z+6
cversion = 4
dataVersion = 0
aclVersion = 0
ephemeralOwner = 0x0
dataLength = 0
numChildren = 2
Node does not exist: /cli-w/later
Created /cli-w/later
cZxid = Z+8
ctime = <time>
mZxid = Z+8
mtime = <time>
pZxid = Z+8
cversion = 0
dataVersion = 0
aclVersion = 0
ephemeralOwner = 0x0
dataLength = 0
numChildren = 0
/cli-w
/cli-w/k2
/cli-w/later
KeeperErrorCode = No such watcher for /cli-w/later
Created /cli-wr
Created /cli-wr/r
Created /cli-wr/r/deep
null
[exit 0]
"""

EXPECTED_EVENTS["watches"] = [
    'None null (SyncConnected)',
    'NodeDataChanged /cli-w/d (SyncConnected)',
    'NodeDeleted /cli-w/d (SyncConnected)',
    'NodeChildrenChanged /cli-w (SyncConnected)',
    'NodeChildrenChanged /cli-w (SyncConnected)',
    'NodeCreated /cli-w/later (SyncConnected)',
    'NodeDataChanged /cli-w/later (SyncConnected)',
    'NodeDataChanged /cli-w/later (SyncConnected)',
    'NodeDataChanged /cli-w/later (SyncConnected)',
    'ChildWatchRemoved /cli-w/later (SyncConnected)',
    'PersistentWatchRemoved /cli-w/later (SyncConnected)',
    'NodeCreated /cli-wr/r (SyncConnected)',
    'NodeCreated /cli-wr/r/deep (SyncConnected)',
    'NodeDataChanged /cli-wr/r/deep (SyncConnected)',
    'PersistentWatchRemoved /cli-wr (SyncConnected)',
    'NodeDataChanged /cli-wr/r (SyncConnected)',
    'None null (Closed)',
]


# --- acl: getAcl/setAcl/addauth digest, digest masking without ADMIN, ip ACLs, auth:: expansion, bad ACLs, auth failure.
SCENARIOS["acl"] = """\
create /cli-acl
stat /cli-acl
getAcl /cli-acl
create /cli-acl/bob x digest:bob:fyVmFCwVbTJYrznoSu1koqYEYF0=:cdrwa
get /cli-acl/bob
set /cli-acl/bob y
getAcl /cli-acl/bob
getAcl -s /cli-acl/bob
ls /cli-acl/bob
create /cli-acl/bob/kid
addauth digest bob:wrong
get /cli-acl/bob
addauth digest bob:secret
get /cli-acl/bob
getAcl /cli-acl/bob
setAcl /cli-acl/bob digest:bob:fyVmFCwVbTJYrznoSu1koqYEYF0=:cdrw,world:anyone:r
getAcl /cli-acl/bob
setAcl /cli-acl/bob world:anyone:cdrwa
setAcl -s /cli-acl world:anyone:cdrwa
setAcl -v 7 /cli-acl world:anyone:cdrwa
setAcl -v 1 /cli-acl world:anyone:cdrw
getAcl -s /cli-acl
create /cli-acl/ip x ip:127.0.0.1:cdrwa
getAcl /cli-acl/ip
get /cli-acl/ip
create /cli-acl/net x ip:127.0.0.0/8:r
get /cli-acl/net
create /cli-acl/far x ip:10.9.8.7:cdrwa
get /cli-acl/far
create /cli-acl/mine x auth::cdrwa
getAcl /cli-acl/mine
create /cli-acl/badscheme x foo:bar:cdrwa
create /cli-acl/baddigest x digest:nocolon:cdrwa
create /cli-acl/badip x ip:999.1.1.1:cdrwa
setAcl /cli-acl/missing world:anyone:r
getAcl /cli-acl/missing
whoami
addauth nosuchscheme whatever
quit
"""

EXPECTED["acl"] = """\
Connecting to <server>
Welcome to ZooKeeper!
JLine support is disabled
Created /cli-acl
cZxid = Z+0
ctime = <time>
mZxid = Z+0
mtime = <time>
pZxid = Z+0
cversion = 0
dataVersion = 0
aclVersion = 0
ephemeralOwner = 0x0
dataLength = 0
numChildren = 0
'world,'anyone
: cdrwa
Created /cli-acl/bob
Insufficient permission : /cli-acl/bob
Insufficient permission : /cli-acl/bob
Insufficient permission : /cli-acl/bob
Insufficient permission : /cli-acl/bob
Insufficient permission : /cli-acl/bob
Insufficient permission : /cli-acl/bob/kid
Insufficient permission : /cli-acl/bob
x
'digest,'bob:fyVmFCwVbTJYrznoSu1koqYEYF0=
: cdrwa
'digest,'bob:x
: cdrw
'world,'anyone
: r
Insufficient permission : /cli-acl/bob
cZxid = Z+0
ctime = <time>
mZxid = Z+0
mtime = <time>
pZxid = Z+1
cversion = 1
dataVersion = 0
aclVersion = 1
ephemeralOwner = 0x0
dataLength = 0
numChildren = 1
version No is not valid : /cli-acl
'world,'anyone
: cdrw
cZxid = Z+0
ctime = <time>
mZxid = Z+0
mtime = <time>
pZxid = Z+1
cversion = 1
dataVersion = 0
aclVersion = 2
ephemeralOwner = 0x0
dataLength = 0
numChildren = 1
Created /cli-acl/ip
'ip,'127.0.0.1
: cdrwa
x
Created /cli-acl/net
x
Created /cli-acl/far
Insufficient permission : /cli-acl/far
Created /cli-acl/mine
'digest,'bob:fyVmFCwVbTJYrznoSu1koqYEYF0=
: cdrwa
'digest,'bob:7e5oQdf4IqOAJ9OLk9OTl5I4cwM=
: cdrwa
KeeperErrorCode = InvalidACL for /cli-acl/badscheme
Acl is not valid : /cli-acl/badscheme
KeeperErrorCode = InvalidACL for /cli-acl/baddigest
Acl is not valid : /cli-acl/baddigest
KeeperErrorCode = InvalidACL for /cli-acl/badip
Acl is not valid : /cli-acl/badip
Node does not exist: /cli-acl/missing
Node does not exist: /cli-acl/missing
Auth scheme: User
digest: bob
digest: bob
ip: 127.0.0.1
[exit 0]
"""

EXPECTED_EVENTS["acl"] = [
    'None null (SyncConnected)',
    'None null (AuthFailed)',
]


# --- super: the super digest from zoo.cfg (DigestAuthenticationProvider.superDigest) bypasses ACLs.
SCENARIOS["super"] = """\
create /cli-super
stat /cli-super
create /cli-super/locked x ip:10.9.8.7:cdrwa
get /cli-super/locked
getAcl /cli-super/locked
addauth digest super:admin
get /cli-super/locked
getAcl /cli-super/locked
setAcl /cli-super/locked world:anyone:r
delete /cli-super/locked
whoami
quit
"""

EXPECTED["super"] = """\
Connecting to <server>
Welcome to ZooKeeper!
JLine support is disabled
Created /cli-super
cZxid = Z+0
ctime = <time>
mZxid = Z+0
mtime = <time>
pZxid = Z+0
cversion = 0
dataVersion = 0
aclVersion = 0
ephemeralOwner = 0x0
dataLength = 0
numChildren = 0
Created /cli-super/locked
Insufficient permission : /cli-super/locked
Insufficient permission : /cli-super/locked
x
'ip,'10.9.8.7
: cdrwa
Auth scheme: User
digest: super
super: 
ip: 127.0.0.1
[exit 0]
"""

EXPECTED_EVENTS["super"] = [
    'None null (SyncConnected)',
    'None null (Closed)',
]


# --- misc: getAllChildrenNumber, getEphemerals, sync, whoami, config, /zookeeper.
# zkCli prints getEphemerals (and whoami) in the SERVER's order, which for ZooKeeper is
# Java HashMap iteration order: getEphemerals clones the session's HashSet<String>
# (clone re-buckets into tableSizeFor(size/0.75 + 1) slots) and lists it bucket by bucket,
# bucket = (h ^ h >>> 16) & (slots - 1) with h = String.hashCode().
SCENARIOS["misc"] = """\
create /cli-misc
stat /cli-misc
create /cli-misc/a
create -e /cli-misc/a/e1
create -e /cli-misc/e2
create -s -e /cli-misc/es-
create /cli-misc/a/b
create /cli-misc/a/b/c
getAllChildrenNumber /cli-misc
getAllChildrenNumber /cli-misc/a/b/c
getAllChildrenNumber /cli-misc/missing
getEphemerals /cli-misc
getEphemerals /cli-misc/a
getEphemerals /cli-misc/e
sync /cli-misc
sync /cli-misc/missing
whoami
config
get /zookeeper/config
ls /zookeeper
get /zookeeper/quota
getAcl /zookeeper
stat /cli-misc
quit
"""

EXPECTED["misc"] = """\
Connecting to <server>
Welcome to ZooKeeper!
JLine support is disabled
Created /cli-misc
cZxid = Z+0
ctime = <time>
mZxid = Z+0
mtime = <time>
pZxid = Z+0
cversion = 0
dataVersion = 0
aclVersion = 0
ephemeralOwner = 0x0
dataLength = 0
numChildren = 0
Created /cli-misc/a
Created /cli-misc/a/e1
Created /cli-misc/e2
Created /cli-misc/es-0000000002
Created /cli-misc/a/b
Created /cli-misc/a/b/c
6
0
Node does not exist: /cli-misc/missing
[/cli-misc/a/e1, /cli-misc/es-0000000002, /cli-misc/e2]
[/cli-misc/a/e1]
[/cli-misc/es-0000000002, /cli-misc/e2]
Sync is OK
Sync is OK
Auth scheme: User
ip: 127.0.0.1
[config, quota]
'world,'anyone
: cdrwa
cZxid = Z+0
ctime = <time>
mZxid = Z+0
mtime = <time>
pZxid = Z+4
cversion = 3
dataVersion = 0
aclVersion = 0
ephemeralOwner = 0x0
dataLength = 0
numChildren = 3
[exit 0]
"""

EXPECTED_EVENTS["misc"] = [
    'None null (SyncConnected)',
    'None null (Closed)',
]


# normalised transcripts per scenario and kind, reused by the cross-kind check
_SEEN: dict[str, dict[str, tuple[str, list[str]]]] = {}


@pytest.fixture(scope="module")
def zkcli_ready():
    reason = zkcli_unavailable_reason()
    if reason:
        if servers.require_compat():
            pytest.fail(f"{reason} (CORRAL_REQUIRE_COMPAT=1 forbids skipping)")
        pytest.skip(reason)


def _diff(a: str, b: str, name_a: str, name_b: str) -> str:
    return "\n".join(
        difflib.unified_diff(a.splitlines(), b.splitlines(), name_a, name_b, lineterm="")
    )


def _run(scenario: str, server, workdir):
    raw, code = run_zkcli(server.port, SCENARIOS[scenario], workdir)
    got = normalise(raw, code)
    _SEEN.setdefault(scenario, {})[server.kind] = (got.text(), got.events)
    if os.environ.get("CORRAL_ZKCLI_PRINT") == "1":
        print(f"\n==== {scenario} [{server.kind}]\n{got.text()}events: {got.events}")
    return raw, got


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_zkcli_scenario(scenario, zk_server, zkcli_ready, tmp_path):
    """(a) the kind's transcript equals the one recorded from ZooKeeper 3.8."""
    raw, got = _run(scenario, zk_server, tmp_path)
    assert got.text() == EXPECTED[scenario], (
        f"zkCli transcript of {scenario!r} on {zk_server.kind} differs from ZooKeeper 3.8's:\n"
        + _diff(EXPECTED[scenario], got.text(), "expected (zookeeper 3.8)", zk_server.kind)
        + f"\n--- raw output ---\n{raw}"
    )
    assert got.events == EXPECTED_EVENTS[scenario], "events:\n" + "\n".join(map(repr, got.events))


@pytest.fixture(scope="module")
def lazy_servers(tmp_path_factory):
    """Servers per kind, started only if a cross-kind check lacks a transcript."""
    started: dict[str, servers.Server] = {}

    def get(kind: str) -> servers.Server:
        if kind not in started:
            started[kind] = start_kind(kind, tmp_path_factory, "zkcli-agree", SERVER_OVERRIDES)
        return started[kind]

    yield get
    for server in started.values():
        server.stop()


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_zkcli_transcripts_agree_across_kinds(scenario, lazy_servers, zkcli_ready, tmp_path):
    """(b) with two kinds enabled, their normalised transcripts are identical."""
    if len(KIND_PARAMS) < 2:
        pytest.skip(f"needs two kinds (CORRAL_COMPAT_TARGETS={','.join(KIND_PARAMS)})")
    kinds = KIND_PARAMS[:2]
    results = {}
    for kind in kinds:
        seen = _SEEN.get(scenario, {}).get(kind)
        if seen is None:
            _run(scenario, lazy_servers(kind), tmp_path)
            seen = _SEEN[scenario][kind]
        results[kind] = seen
    (ka, (ta, ea)), (kb, (tb, eb)) = results.items()
    assert ta == tb, f"zkCli transcripts differ between {ka} and {kb}:\n" + _diff(ta, tb, ka, kb)
    assert ea == eb, f"watch events differ:\n{ka}: {ea}\n{kb}: {eb}"


def test_normaliser_masks_only_volatile_fields():
    raw = "\n".join(
        [
            "SLF4J: noise",
            "Connecting to 127.0.0.1:40123",
            "",
            "WATCHER::",
            "",
            "WatchedEvent state:SyncConnected type:None path:null",
            "cZxid = 0x1f",
            "ctime = Sat Nov 21 21:51:20 UTC 2026",
            "mZxid = 0x21",
            "pZxid = 0x1e",
            "ephemeralOwner = 0x1000004ece3002a",
            "ephemeralOwner = 0x0",
            "ephemeralOwner = 0x1000004ece3002b",
            "ephemeralOwner = 0x1000004ece3002a",
            "dataLength = 3",
        ]
    )
    t = normalise(raw, 1)
    assert t.lines == [
        "Connecting to <server>",
        "cZxid = Z+0",
        "ctime = <time>",
        "mZxid = Z+2",
        "pZxid = Z-1",
        "ephemeralOwner = <session#1>",
        "ephemeralOwner = 0x0",
        "ephemeralOwner = <session#2>",
        "ephemeralOwner = <session#1>",
        "dataLength = 3",
        "[exit 1]",
    ]
    assert t.events == ["None null (SyncConnected)"]


def test_normaliser_sorts_client_made_removal_events():
    raw = "\n".join(
        "WatchedEvent state:SyncConnected type:%s path:%s" % e
        for e in [
            ("NodeCreated", "/a"),
            ("PersistentWatchRemoved", "/a"),
            ("DataWatchRemoved", "/a"),
            ("ChildWatchRemoved", "/a"),
            ("NodeDeleted", "/a"),
            ("DataWatchRemoved", "/b"),
        ]
    )
    assert normalise(raw).events == [
        "NodeCreated /a (SyncConnected)",
        "ChildWatchRemoved /a (SyncConnected)",
        "DataWatchRemoved /a (SyncConnected)",
        "PersistentWatchRemoved /a (SyncConnected)",
        "NodeDeleted /a (SyncConnected)",
        "DataWatchRemoved /b (SyncConnected)",
    ]
