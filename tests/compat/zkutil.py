"""Helpers on top of kazoo shared by the compat tests.

* `Tap` records, in the kazoo connection thread, every watch notification and every
  reply header in the order they came off the socket. That is the only place where
  "the event arrived before the reply" can be observed: kazoo hands events to a
  separate callback thread.
* Request records for operations kazoo 2.11 does not expose (createContainer,
  createTTL, addWatch, removeWatches, getEphemerals, getAllChildrenNumber, whoAmI)
  and a multi that returns every per-op result unchanged. They plug into kazoo's
  low-level `_call` queue, so they share the session, xids and ordering of normal calls.
"""

from __future__ import annotations

import struct
import threading
import time
from collections import namedtuple

from kazoo.client import KazooClient
from kazoo.protocol.serialization import (  # noqa: F401  (re-exported for the tests)
    CheckVersion,
    Create,
    Create2,
    Delete,
    SetData,
    int_struct,
    long_struct,
    multiheader_struct,
    read_string,
    stat_struct,
    write_buffer,
    write_string,
)
from kazoo.protocol.states import ZnodeStat
from kazoo.security import OPEN_ACL_UNSAFE

CALL_TIMEOUT = 15.0
EVENT_TIMEOUT = 10.0

# EventType numbers as on the wire.
EVENT_NAMES = {1: "NodeCreated", 2: "NodeDeleted", 3: "NodeDataChanged", 4: "NodeChildrenChanged"}

# Containers and TTL nodes keep a marker in ephemeralOwner inside the server
# (0x8000000000000000, 0xFF00_0000_0000_0000 | ttl), but ZooKeeper 3.8 reports 0 to
# clients for both: a Stat never shows the marker.


# --------------------------------------------------------------------------- tap


class Tap:
    """Ordered log of notifications and replies of one kazoo client connection."""

    def __init__(self, client: KazooClient):
        self.client = client
        self.entries: list[tuple] = []
        self._cond = threading.Condition()
        conn = client._connection
        orig_event = conn._read_watch_event
        orig_reply = conn._read_response

        def read_watch_event(buffer, offset):
            etype, state = struct.unpack_from("!ii", buffer, offset)
            path, _ = read_string(buffer, offset + 8)
            self._append(("event", EVENT_NAMES.get(etype, etype), path, state))
            return orig_event(buffer, offset)

        def read_response(header, buffer, offset):
            self._append(("reply", header.xid, header.zxid, header.err))
            return orig_reply(header, buffer, offset)

        conn._read_watch_event = read_watch_event
        conn._read_response = read_response

    def _append(self, entry):
        with self._cond:
            self.entries.append(entry)
            self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return len(self.entries)

    def since(self, mark: int) -> list[tuple]:
        with self._cond:
            return list(self.entries[mark:])

    def events(self, since: int = 0) -> list[tuple[str, str]]:
        return [(e[1], e[2]) for e in self.since(since) if e[0] == "event"]

    def last_reply(self) -> tuple:
        with self._cond:
            for e in reversed(self.entries):
                if e[0] == "reply":
                    return e
        raise AssertionError("no reply recorded yet")

    def wait_event(self, etype: str, path: str, since: int = 0, timeout: float = EVENT_TIMEOUT):
        """Block until notification (etype, path) was recorded after `since`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self.entries[since:]:
                    if e[0] == "event" and e[1] == etype and e[2] == path:
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no {etype} event for {path} within {timeout}s; "
                        f"saw {self.entries[since:]}"
                    )
                self._cond.wait(left)


# ------------------------------------------------------------------ low-level ops


def raw_call(client: KazooClient, request, timeout: float = CALL_TIMEOUT):
    """Queue `request` on the client's connection and wait for its reply."""
    result = client.handler.async_result()
    client._call(request, result)
    return result.get(timeout=timeout)


def _write_acls(acls) -> bytes:
    out = bytearray(int_struct.pack(len(acls)))
    for acl in acls:
        out += int_struct.pack(acl.perms) + write_string(acl.id.scheme) + write_string(acl.id.id)
    return bytes(out)


def _read_stat(buf, offset):
    return ZnodeStat._make(stat_struct.unpack_from(buf, offset)), offset + stat_struct.size


def _write_path(path: str) -> bytes:
    # kazoo's write_string turns "" into a null string; keep "" as "" here.
    data = path.encode("utf-8")
    return int_struct.pack(len(data)) + data


class RawCreate(namedtuple("RawCreate", "path data acl flags")):
    """create (op 1) with an arbitrary flags value and an unnormalised path."""

    type = 1

    def serialize(self):
        return (
            _write_path(self.path)
            + write_buffer(self.data)
            + _write_acls(self.acl)
            + int_struct.pack(self.flags)
        )

    @classmethod
    def deserialize(cls, buf, offset):
        return read_string(buf, offset)[0]


class RawCreate2(RawCreate):
    """create2 (op 15): returns (path, stat)."""

    type = 15

    @classmethod
    def deserialize(cls, buf, offset):
        path, offset = read_string(buf, offset)
        return path, _read_stat(buf, offset)[0]


class CreateContainer(RawCreate2):
    """createContainer (op 19); flags must be 4."""

    type = 19

    def __new__(cls, path, data=b"", acl=None, flags=4):
        return super().__new__(cls, path, data, acl or OPEN_ACL_UNSAFE, flags)


class CreateTTL(namedtuple("CreateTTL", "path data acl flags ttl")):
    """createTTL (op 21); flags 5 (persistent) or 6 (persistent sequential)."""

    type = 21

    def serialize(self):
        return (
            _write_path(self.path)
            + write_buffer(self.data)
            + _write_acls(self.acl)
            + int_struct.pack(self.flags)
            + long_struct.pack(self.ttl)
        )

    @classmethod
    def deserialize(cls, buf, offset):
        path, offset = read_string(buf, offset)
        return path, _read_stat(buf, offset)[0]


def create_ttl(client, path, ttl, data=b"", sequential=False, acl=None):
    return raw_call(client, CreateTTL(path, data, acl or OPEN_ACL_UNSAFE, 6 if sequential else 5, ttl))


def create_container(client, path, data=b"", acl=None):
    return raw_call(client, CreateContainer(path, data, acl))


class RawDelete(namedtuple("RawDelete", "path version")):
    type = 2

    def serialize(self):
        return _write_path(self.path) + int_struct.pack(self.version)

    @classmethod
    def deserialize(cls, buf, offset):
        return True


class RawSetData(namedtuple("RawSetData", "path data version")):
    type = 5

    def serialize(self):
        return _write_path(self.path) + write_buffer(self.data) + int_struct.pack(self.version)

    @classmethod
    def deserialize(cls, buf, offset):
        return _read_stat(buf, offset)[0]


class RawExists(namedtuple("RawExists", "path")):
    """exists without a watch, unnormalised path; NoNode surfaces as None (kazoo rule)."""

    type = 3

    def serialize(self):
        return _write_path(self.path) + b"\x00"

    @classmethod
    def deserialize(cls, buf, offset):
        return _read_stat(buf, offset)[0]


class AddWatch(namedtuple("AddWatch", "path mode")):
    """addWatch (op 106); mode 0 = PERSISTENT, 1 = PERSISTENT_RECURSIVE."""

    type = 106

    def serialize(self):
        return _write_path(self.path) + int_struct.pack(self.mode)

    @classmethod
    def deserialize(cls, buf, offset):
        return int_struct.unpack_from(buf, offset)[0] if len(buf) >= offset + 4 else None


class RemoveWatches(namedtuple("RemoveWatches", "path watcher_type")):
    """removeWatches (op 18); types: 1 children, 2 data, 3 any, 4 persistent, 5 recursive."""

    type = 18

    def serialize(self):
        return _write_path(self.path) + int_struct.pack(self.watcher_type)

    @classmethod
    def deserialize(cls, buf, offset):
        return True


class CheckWatches(RemoveWatches):
    type = 17


class GetEphemerals(namedtuple("GetEphemerals", "prefix")):
    type = 103

    def serialize(self):
        return _write_path(self.prefix)

    @classmethod
    def deserialize(cls, buf, offset):
        (count,) = int_struct.unpack_from(buf, offset)
        offset += 4
        out = []
        for _ in range(max(count, 0)):
            s, offset = read_string(buf, offset)
            out.append(s)
        return out


class GetAllChildrenNumber(namedtuple("GetAllChildrenNumber", "path")):
    type = 104

    def serialize(self):
        return _write_path(self.path)

    @classmethod
    def deserialize(cls, buf, offset):
        return int_struct.unpack_from(buf, offset)[0]


class WhoAmI(namedtuple("WhoAmI", "")):
    type = 107

    def __bool__(self):  # kazoo skips replies of falsy requests; an empty tuple is falsy
        return True

    def serialize(self):
        return b""

    @classmethod
    def deserialize(cls, buf, offset):
        (count,) = int_struct.unpack_from(buf, offset)
        offset += 4
        out = []
        for _ in range(max(count, 0)):
            scheme, offset = read_string(buf, offset)
            user, offset = read_string(buf, offset)
            out.append((scheme, user))
        return out


class RawMulti(namedtuple("RawMulti", "operations")):
    """multi (op 14) returning [(result_type, err, body)] for every op.

    body: str for create, (path, stat) for create2/container/ttl, stat for setData,
    None for delete/check and for error results.
    """

    type = 14

    def serialize(self):
        out = bytearray()
        for op in self.operations:
            out += multiheader_struct.pack(op.type, False, -1) + op.serialize()
        out += multiheader_struct.pack(-1, True, -1)
        return bytes(out)

    @classmethod
    def deserialize(cls, buf, offset):
        results = []
        while True:
            rtype, done, err = multiheader_struct.unpack_from(buf, offset)
            offset += multiheader_struct.size
            if done:
                return results
            body = None
            if rtype == 1:
                body, offset = read_string(buf, offset)
            elif rtype == 15:
                path, offset = read_string(buf, offset)
                stat, offset = _read_stat(buf, offset)
                body = (path, stat)
            elif rtype == 5:
                body, offset = _read_stat(buf, offset)
            elif rtype in (2, 13):
                body = None
            elif rtype == -1:
                (err,) = int_struct.unpack_from(buf, offset)
                offset += 4
            else:
                raise ValueError(f"unexpected multi result type {rtype}")
            results.append((rtype, err, body))


# ------------------------------------------------------------------ raw socket


class RawConn:
    """A bare ZooKeeper connection for wire-level checks (no kazoo in between)."""

    def __init__(self, port: int, timeout: float = 5.0):
        import socket

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.settimeout(timeout)

    def close(self):
        self.sock.close()

    def send_frame(self, payload: bytes):
        self.sock.sendall(int_struct.pack(len(payload)) + payload)

    def _recv_exact(self, n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def recv_frame(self) -> bytes | None:
        """Next frame's payload, or None when the server closed the connection."""
        head = self._recv_exact(4)
        if head is None:
            return None
        (length,) = int_struct.unpack(head)
        return self._recv_exact(length)

    def is_closed_by_server(self) -> bool:
        """True if the server closes the socket (EOF) before the read timeout."""
        import socket

        deadline = time.monotonic() + 2 * (self.sock.gettimeout() or 5.0)
        try:
            while time.monotonic() < deadline:
                chunk = self.sock.recv(4096)
                if not chunk:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        return False  # still sending data after the deadline

    def connect(self, timeout_ms=30000, session_id=0, passwd=b"\0" * 16, last_zxid=0, read_only=True):
        payload = struct.pack("!iqiq", 0, last_zxid, timeout_ms, session_id) + write_buffer(passwd)
        if read_only is not None:
            payload += b"\x01" if read_only else b"\x00"
        self.send_frame(payload)
        body = self.recv_frame()
        if body is None:
            return None
        proto, negotiated, sid = struct.unpack_from("!iiq", body, 0)
        pw_len = int_struct.unpack_from(body, 16)[0]
        pw = body[20 : 20 + pw_len]
        rest = body[20 + pw_len :]
        return {"length": len(body), "protocol": proto, "timeout": negotiated, "session_id": sid, "passwd": pw, "tail": rest}

    def request(self, xid: int, op: int, body: bytes = b""):
        self.send_frame(struct.pack("!ii", xid, op) + body)

    def reply(self):
        """(xid, zxid, err, body) of the next frame, or None on close."""
        frame = self.recv_frame()
        if frame is None:
            return None
        xid, zxid, err = struct.unpack_from("!iqi", frame, 0)
        return xid, zxid, err, frame[16:]


def path_bytes(path: str) -> bytes:
    return _write_path(path)
