"""workers/rndc.py, the control-channel client, against a real named: commands, refusals, bad keys, hangs."""
import base64
import concurrent.futures as futures
import socket
import threading
import time

import psutil
import pytest

from tests.conftest import needs_named
from tests.servers.bind9 import Bind9Server
from workers import rndc

pytestmark = [pytest.mark.bind9, needs_named]

WRONG_SECRET = base64.b64encode(b"not the key of this named, at all").decode()


@pytest.fixture(scope="module")
def bind():
    with Bind9Server(primary=("127.0.0.1", 9)) as server:  # zones here never need to transfer
        yield server


def client(bind, secret=None, algorithm="hmac-sha256", timeout=5.0):
    return rndc.Client(bind.host, bind.rndc_port, algorithm, secret or bind.rndc_secret, timeout)


def config(name="rndc-test.example", port=9):
    return f'{{ type secondary; primaries {{ 127.0.0.1 port {port}; }}; file "{name}.db"; }};'


def test_status(bind):
    reply = client(bind).call("status")
    assert reply.ok and reply.err is None
    assert "version: BIND 9" in reply.text and "server is up and running" in reply.text


def test_addzone_modzone_delzone_and_named_refusals(bind):
    c = client(bind)
    assert c.call(f"addzone rndc-test.example {config()}").ok
    assert c.call(f"addzone rndc-test.example {config()}").err == "already exists"
    assert "primaries { 127.0.0.1 port 9; }" in bind.rndc("showzone", "rndc-test.example").stdout
    reply = c.call(f"modzone rndc-test.example {config(port=10)}")
    assert reply.ok and "reconfigured" in reply.text
    assert "127.0.0.1 port 10;" in bind.rndc("showzone", "rndc-test.example").stdout
    assert c.call("delzone -clean rndc-test.example").ok
    reply = c.call("delzone -clean rndc-test.example")
    assert reply.err == "not found" and "no matching zone" in reply.text
    assert c.call(f"modzone rndc-test.example {config()}").err == "not found"
    assert c.call("no-such-command").err == "unknown command"


def test_wrong_secret_is_a_clear_error_without_the_secret(bind):
    with pytest.raises(rndc.RndcError) as excinfo:
        client(bind, secret=WRONG_SECRET).call("status")
    message = str(excinfo.value)
    assert "without a reply: a wrong key" in message and f"{bind.host}#{bind.rndc_port}" in message
    assert WRONG_SECRET not in message and bind.rndc_secret not in message


@pytest.mark.parametrize("algorithm", ["hmac-md5", "hmac-sha512"])
def test_wrong_algorithm_is_refused(bind, algorithm):
    """named's key is hmac-sha256: the same secret under another algorithm is a wrong key."""
    with pytest.raises(rndc.RndcError, match="a wrong key"):
        client(bind, algorithm=algorithm).call("status")


def test_unknown_algorithm():
    with pytest.raises(ValueError, match="unsupported algorithm 'rot13'"):
        rndc.Client("127.0.0.1", 953, "rot13", "c2VjcmV0")


def test_connection_refused_is_fast():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening
        started = time.monotonic()
        with pytest.raises(rndc.RndcError, match=f"connect failed: 127.0.0.1#{port}: connection refused"):
            rndc.Client("127.0.0.1", port, "hmac-sha256", "c2VjcmV0", 5).call("status")
        assert time.monotonic() - started < 1


def _peer(reply: bytes | None):
    """A TCP peer that reads a frame and answers `reply` (None: nothing, keeping the connection)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    held = []

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
            conn.recv(65536)
            if reply is not None:
                conn.sendall(reply)
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return server, held


def test_silent_peer_times_out_within_the_timeout():
    server, held = _peer(None)
    with server:
        started = time.monotonic()
        with pytest.raises(rndc.RndcTimeout, match=r"no reply from 127\.0\.0\.1#\d+ in 0\.5 s"):
            rndc.Client("127.0.0.1", server.getsockname()[1], "hmac-sha256", "c2VjcmV0", 0.5).call("status")
        assert time.monotonic() - started < 1.5
    for conn in held:
        conn.close()


@pytest.mark.parametrize("reply, match", [
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", "is not a BIND9 control channel"),
    (b"\x00\x00\x00\x10\x00\x00\x00\x01" + b"\x05_auth\x02\x00\x00\x00\x00" + b"xxx", "not signed with our key"),
])
def test_a_peer_that_is_not_named(reply, match):
    server, _ = _peer(reply)
    with server:
        with pytest.raises(rndc.RndcError, match=match):
            rndc.Client("127.0.0.1", server.getsockname()[1], "hmac-sha256", "c2VjcmV0", 2).call("status")


def test_concurrent_calls_from_threads(bind):
    """The worker's threads share one client per target: every call gets its own reply."""
    c = client(bind)
    names = [f"t{i}.rndc-threads.example" for i in range(40)]
    with futures.ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda n: c.call(f"addzone {n} {config(n)}"), names))
    assert all(r.ok for r in replies)
    with futures.ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda n: c.call(f"delzone -clean {n}"), names))
    assert all(r.ok for r in replies)
    assert client(bind).call(f"delzone {names[0]}").err == "not found"


def _connections_to(port: int) -> set[int]:
    """The local ports of this process's open TCP connections to port."""
    return {c.laddr.port for c in psutil.Process().net_connections("tcp")
            if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED}


def test_connections_are_kept_and_capped(bind):
    """A command goes over a kept connection (one round trip, no new connection), and however many
    threads call at once a client holds at most its cap: a burst of new connections overflows named's
    listen backlog of 5, and each dropped SYN costs a second."""
    c = client(bind)
    c.close()  # the module's named may have been restarted: start from no connection
    assert c.call("status").ok
    kept = _connections_to(bind.rndc_port)
    assert len(kept) == 1
    assert c.call("status").ok and _connections_to(bind.rndc_port) == kept

    capped = rndc.Client(bind.host, bind.rndc_port, "hmac-sha256", bind.rndc_secret, 5, connections=2)
    names = [f"t{i}.rndc-cap.example" for i in range(30)]
    with futures.ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda n: capped.call(f"addzone {n} {config(n)}"), names))
        assert all(r.ok for r in replies)
        assert len(_connections_to(bind.rndc_port) - kept) == 2
        assert all(r.ok for r in pool.map(lambda n: capped.call(f"delzone -clean {n}"), names))
    capped.close()
    c.close()
    assert not _connections_to(bind.rndc_port)


def test_a_kept_connection_named_dropped_is_replaced(bind):
    """named restarted (its kept connections closed): the next command opens a new one and succeeds."""
    c = client(bind)
    assert c.call("status").ok
    before = _connections_to(bind.rndc_port)
    bind.restart()
    reply = c.call("status")
    assert reply.ok and "server is up and running" in reply.text
    after = _connections_to(bind.rndc_port)
    assert len(after) == 1 and not after & before
    c.close()


def test_shared_client_is_one_per_named():
    a = rndc.shared_client("127.0.0.1", 953, "hmac-sha256", "c2VjcmV0", 5)
    assert rndc.shared_client("127.0.0.1", 953, "hmac-sha256", "c2VjcmV0", 5) is a
    assert rndc.shared_client("127.0.0.1", 954, "hmac-sha256", "c2VjcmV0", 5) is not a


def test_wire_format_round_trip():
    table = {"_ctrl": {"_ser": b"1", "_nonce": b"42"}, "_data": {"type": "status", "empty": b""}}
    assert rndc.decode(rndc.encode(table)) == {"_ctrl": {"_ser": b"1", "_nonce": b"42"},
                                               "_data": {"type": b"status", "empty": b""}}
    with pytest.raises(rndc.RndcError, match="malformed"):
        rndc.decode(rndc.encode(table)[:-3])
