"""Wire-level behaviour a plain kazoo session cannot show (raw sockets, per kind)."""

from __future__ import annotations

import struct

import pytest

from zkutil import RawConn, path_bytes


@pytest.fixture
def raw(zk_server):
    conns = []

    def factory():
        c = RawConn(zk_server.port)
        conns.append(c)
        return c

    yield factory
    for c in conns:
        c.close()


def test_session_timeout_is_clamped_to_2_and_20_ticks(raw):
    for asked, granted in ((1000, 4000), (10000, 10000), (1_000_000, 40000)):
        resp = raw().connect(timeout_ms=asked)
        assert (resp["protocol"], resp["timeout"]) == (0, granted)
        assert resp["session_id"] >> 56 == 1
        assert len(resp["passwd"]) == 16


def test_read_only_byte_is_echoed_only_when_sent(raw):
    assert raw().connect(read_only=False)["length"] == 37
    assert raw().connect(read_only=False)["tail"] == b"\x00"
    assert raw().connect(read_only=True)["tail"] == b"\x00"
    old = raw().connect(read_only=None)
    assert old["length"] == 36 and old["tail"] == b""


def test_reconnect_checks_the_password(raw):
    first = raw()
    resp = first.connect()
    sid, pw = resp["session_id"], resp["passwd"]
    again = raw().connect(session_id=sid, passwd=pw)
    assert (again["session_id"], again["passwd"], again["timeout"]) == (sid, pw, 30000)
    bad = raw()
    wrong = bad.connect(session_id=sid, passwd=b"\x01" * 16)
    assert (wrong["timeout"], wrong["session_id"], wrong["passwd"]) == (0, 0, b"\0" * 16)
    assert bad.is_closed_by_server()


def test_ping_error_replies_and_unknown_opcodes(raw):
    c = raw()
    c.connect()
    c.request(-2, 11)
    xid, zxid, err, body = c.reply()
    assert (xid, err, body) == (-2, 0, b"") and zxid > 0
    last = zxid
    c.request(1, 3, path_bytes("/does/not/exist") + b"\x00")  # exists
    assert c.reply() == (1, last, -101, b""), "errors carry no body"
    c.request(2, 3, path_bytes("/") + b"\x00")
    xid, zxid, err, body = c.reply()
    assert (xid, zxid, err, len(body)) == (2, last, 0, 68)
    c.request(5, 11)
    assert c.reply()[:3] == (-2, last, 0), "a ping reply always has xid -2"
    c.request(3, 999)
    assert c.reply() == (3, -1, -6, b""), "unknown opcode: UNIMPLEMENTED with zxid -1"
    assert c.is_closed_by_server(), "...and then the server closes the connection"


def test_server_internal_opcodes_from_a_client_fail_as_writes(raw):
    c = raw()
    c.connect()
    c.request(-2, 11)
    last = c.reply()[1]
    c.request(1, -10)  # createSession
    assert c.reply() == (1, last + 1, -5, b"")
    c.request(2, 20, path_bytes("/zookeeper"))  # deleteContainer
    assert c.reply() == (2, last + 2, -8, b"")
    c.request(3, 3, path_bytes("/") + b"\x00")
    assert c.reply()[:3] == (3, last + 2, 0)


def test_who_am_i_lists_the_connection_ids(raw):
    c = raw()
    c.connect()
    c.request(1, 107)
    xid, _, err, body = c.reply()
    assert (xid, err) == (1, 0)
    assert body == struct.pack("!i", 1) + path_bytes("ip") + path_bytes("127.0.0.1")
    auth = struct.pack("!i", 0) + path_bytes("digest") + path_bytes("bob:secret")
    c.request(-4, 100, auth)
    assert c.reply() == (-4, 0, 0, b"")
    c.request(2, 107)
    xid, _, err, body = c.reply()
    assert body == (
        struct.pack("!i", 2) + path_bytes("digest") + path_bytes("bob") + path_bytes("ip") + path_bytes("127.0.0.1")
    )


def test_failed_auth_replies_then_closes(raw):
    c = raw()
    c.connect()
    c.request(-4, 100, struct.pack("!i", 0) + path_bytes("nosuchscheme") + path_bytes("x"))
    assert c.reply() == (-4, 0, -115, b"")
    assert c.is_closed_by_server()


def test_close_session_replies_then_closes(raw):
    c = raw()
    c.connect()
    c.request(7, -11)
    xid, zxid, err, body = c.reply()
    assert (xid, err, body) == (7, 0, b"") and zxid > 0
    assert c.is_closed_by_server()


def test_oversized_frame_closes_the_connection(raw):
    c = raw()
    c.connect()
    c.sock.sendall(struct.pack("!i", 0x100000) + struct.pack("!ii", 1, 3))
    assert c.is_closed_by_server()


def test_unknown_four_letter_word_closes_without_reply(raw):
    c = raw()
    c.sock.sendall(b"abcd")
    assert c.is_closed_by_server()
