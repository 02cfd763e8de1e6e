"""BIND9's control channel, the protocol `rndc` speaks, from Python: no process per command.

Forking `rndc` for every zone and target cost the worker about 10 ms of CPU per call; a command
here is one signed round trip on a kept connection. named takes any number of commands on a
connection once its reply to the first (a `null` command) has given the connection's nonce, so a
client keeps its connections, at most MAX_CONNECTIONS at once: named listens on its control channel
with a backlog of 5 and runs addzone, modzone and delzone one at a time, so a burst of new
connections only overflows that backlog, and the kernel retries a dropped SYN a second later. The
wire format is ISC's "isccc" (BIND9's
lib/isccc/cc.c): a frame is a 32-bit length, a 32-bit version (1) and a table of labelled values
(tables or binary data, each a type byte and a 32-bit length). A message is `{_auth, _ctrl,
_data}`; `_auth` carries an HMAC of the bytes after it (base64, as `hmd5` for hmac-md5, else
`hsha`: an algorithm byte and 88 bytes), `_ctrl` a serial, the time, an expiry and the nonce the
server gave in its reply to a first `null` command; `_data.type` is the command line. named
replies with `_data.err` when the command failed (e.g. "already exists", "not found") and the
output in `_data.text`; it closes the connection, without a reply, on a bad signature.
"""
import base64
import dataclasses
import hashlib
import hmac
import itertools
import os
import random
import socket
import struct
import threading
import time
from functools import lru_cache

ALGORITHMS = {"hmac-md5": (157, hashlib.md5), "hmac-sha1": (161, hashlib.sha1),
              "hmac-sha224": (162, hashlib.sha224), "hmac-sha256": (163, hashlib.sha256),
              "hmac-sha384": (164, hashlib.sha384), "hmac-sha512": (165, hashlib.sha512)}
BINARY, TABLE = 1, 2
MAX_REPLY = 1 << 24  # `rndc status` and friends are small; a larger length is not named talking
MAX_CONNECTIONS = 4  # per client (one per named and process); below named's listen backlog of 5
IDLE_SECONDS = 30  # a kept connection unused for longer is closed rather than trusted


class RndcError(Exception):
    """The command could not be carried out: connection, signature, or protocol. One line, no secret."""


class RndcTimeout(RndcError):
    pass


class _Closed(RndcError):
    """The peer closed the connection before replying."""


@dataclasses.dataclass(eq=False)
class _Connection:
    sock: socket.socket
    nonce: bytes | None  # from named's reply to the connection's first command
    used: float  # time.monotonic() of its last reply


@dataclasses.dataclass(frozen=True)
class Reply:
    err: str | None  # named's reason when the command failed, else None
    text: str  # the command's output (`rndc status`'s lines, addzone's notes)

    @property
    def ok(self) -> bool:
        return self.err is None


@lru_cache(maxsize=64)
def shared_client(host: str, port: int, algorithm: str, secret: str, timeout: float = 10.0) -> "Client":
    """The process's client for one named (its kept connections and their cap are shared by the
    worker's threads and tasks)."""
    return Client(host, port, algorithm, secret, timeout)


class Client:
    """Commands to one named; thread-safe. Connections are kept for the next command (see above)."""

    _serials = itertools.count(random.randrange(1 << 24))

    def __init__(self, host: str, port: int, algorithm: str, secret: str, timeout: float = 10.0,
                 connections: int = MAX_CONNECTIONS):
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unsupported algorithm {algorithm!r}")
        self.host, self.port, self.timeout = host, port, timeout
        self._alg, self._hash = ALGORITHMS[algorithm]
        self._md5 = algorithm == "hmac-md5"
        self._secret = base64.b64decode(secret)
        self._slots = threading.BoundedSemaphore(connections)
        self._lock = threading.Lock()
        self._idle: list[_Connection] = []
        self._pid = os.getpid()

    def call(self, command: str) -> Reply:
        """Run one command line (e.g. "addzone example.com { ... };") and return named's reply."""
        deadline = time.monotonic() + self.timeout
        if not self._slots.acquire(timeout=self.timeout):
            raise RndcTimeout(f"no free connection to {self.host}#{self.port} in {self.timeout:g} s")
        try:
            data = self._call(command, deadline)
        finally:
            self._slots.release()
        err = data.get("err")
        return Reply(err=err.decode(errors="replace") if err is not None else None,
                     text=data.get("text", b"").decode(errors="replace"))

    def _call(self, command: str, deadline: float) -> dict:
        """The reply's _data, on a kept connection if one is open, else (or when named has closed the
        kept one: restarted, say) on a new one. Any other failure closes the connection."""
        conn = self._take()
        if conn is not None:
            try:
                return self._on(conn, command, deadline)
            except _Closed:
                pass  # named closed it while it was kept: commands are idempotent, send it again
        conn = self._connect(deadline)
        return self._on(conn, command, deadline)

    def _on(self, conn: _Connection, command: str, deadline: float) -> dict:
        try:
            data = self._exchange(conn.sock, command, conn.nonce, deadline)["_data"]
        except BaseException:
            conn.sock.close()
            raise
        conn.used = time.monotonic()
        with self._lock:
            self._idle.append(conn)
        return data

    def _take(self) -> _Connection | None:
        """The most recently used kept connection that is still fresh (none after a fork)."""
        with self._lock:
            if self._pid != os.getpid():
                self._pid, self._idle = os.getpid(), []
            now = time.monotonic()
            while self._idle:
                conn = self._idle.pop()
                if now - conn.used < IDLE_SECONDS:
                    return conn
                conn.sock.close()
        return None

    def _connect(self, deadline: float) -> _Connection:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=max(0.001, deadline - time.monotonic()))
        except TimeoutError:
            raise RndcTimeout(f"connect to {self.host}#{self.port} timed out") from None
        except OSError as exc:
            raise RndcError(f"connect failed: {self.host}#{self.port}: {_reason(exc)}") from None
        try:
            nonce = self._exchange(sock, "null", None, deadline)["_ctrl"].get("_nonce")
        except BaseException:
            sock.close()
            raise
        return _Connection(sock, nonce, time.monotonic())

    def close(self) -> None:
        """Close the kept connections (the next command opens one again)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.sock.close()

    def _exchange(self, sock: socket.socket, command: str, nonce: bytes | None, deadline: float) -> dict:
        now = int(time.time())
        ctrl = {"_ser": str(next(self._serials)).encode(), "_tim": str(now).encode(), "_exp": str(now + 60).encode()}
        if nonce is not None:
            ctrl["_nonce"] = nonce
        body = encode({"_ctrl": ctrl, "_data": {"type": command.encode()}})
        message = encode({"_auth": self._auth(body)}) + body
        try:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            sock.sendall(struct.pack(">II", len(message) + 4, 1) + message)
            length, version = struct.unpack(">II", self._read(sock, 8, deadline))
            if version != 1 or not 4 <= length <= MAX_REPLY:
                raise RndcError(f"{self.host}#{self.port} is not a BIND9 control channel (version {version})")
            reply = self._read(sock, length - 4, deadline)
        except TimeoutError:
            raise RndcTimeout(f"no reply from {self.host}#{self.port} in {self.timeout:g} s") from None
        except ConnectionError as exc:  # reset, broken pipe
            raise _Closed(f"connection to {self.host}#{self.port} failed: {_reason(exc)}") from None
        except OSError as exc:
            raise RndcError(f"connection to {self.host}#{self.port} failed: {_reason(exc)}") from None
        self._verify(reply)
        table = decode(reply)
        if not isinstance(table.get("_ctrl"), dict) or not isinstance(table.get("_data"), dict):
            raise RndcError(f"malformed reply from {self.host}#{self.port}")
        return table

    def _auth(self, body: bytes) -> dict:
        digest = base64.b64encode(hmac.new(self._secret, body, self._hash).digest())
        if self._md5:
            return {"hmd5": digest[:22]}
        return {"hsha": bytes([self._alg]) + digest.ljust(88, b"\0")}

    def _verify(self, reply: bytes) -> None:
        """The reply is signed with our key (its _auth element comes first and covers the rest)."""
        try:
            label, auth, rest = _element(reply, 0)
        except (IndexError, struct.error, ValueError):
            label, auth, rest = None, None, len(reply)
        expected = self._auth(reply[rest:])
        if label != "_auth" or not isinstance(auth, dict) or not any(
                hmac.compare_digest(auth.get(k, b""), v) for k, v in expected.items()):
            raise RndcError(f"reply from {self.host}#{self.port} is not signed with our key")

    def _read(self, sock: socket.socket, size: int, deadline: float) -> bytes:
        chunks, left = [], size
        while left:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            chunk = sock.recv(min(left, 65536))
            if not chunk:
                raise _Closed(f"connection closed by {self.host}#{self.port} without a reply: a wrong key "
                                f"(name, algorithm or secret), or an address named's controls do not allow")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)


def encode(table: dict) -> bytes:
    """A table of str/bytes/dict values in isccc wire form."""
    out = bytearray()
    for key, value in table.items():
        label = key.encode()
        if isinstance(value, dict):
            kind, value = TABLE, encode(value)
        else:
            kind, value = BINARY, value.encode() if isinstance(value, str) else bytes(value)
        out += bytes([len(label)]) + label + struct.pack(">BI", kind, len(value)) + value
    return bytes(out)


def decode(data: bytes) -> dict:
    """The isccc table in data: tables become dicts, binary data bytes (lists, unused by named's
    replies, are kept as their raw bytes)."""
    table, pos = {}, 0
    try:
        while pos < len(data):
            label, value, pos = _element(data, pos)
            table[label] = value
    except (IndexError, struct.error, ValueError):
        raise RndcError("malformed control-channel message") from None
    return table


def _element(data: bytes, pos: int):
    size = data[pos]
    label = data[pos + 1:pos + 1 + size].decode("ascii")
    pos += 1 + size
    kind, length = struct.unpack_from(">BI", data, pos)
    pos += 5
    value = data[pos:pos + length]
    if len(value) != length:
        raise ValueError("truncated")
    return label, decode(value) if kind == TABLE else value, pos + length


def _reason(exc: OSError) -> str:
    """"connection refused", as rndc says it, not "[Errno 111] Connection refused"."""
    return (exc.strerror or str(exc)).lower()
