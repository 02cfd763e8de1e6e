"""Real DNS servers run as subprocesses/threads on 127.0.0.1 for integration tests."""

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Self

import dns.exception
import dns.message
import dns.query


def free_port(udp_too: bool = True) -> int:
    """A port on 127.0.0.1 that is free now for TCP (and UDP when udp_too).

    The OS picks a TCP port; we then check the same number is free for UDP,
    because a DNS server needs both. Racy by nature, but good enough for tests.
    """
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            if not udp_too:
                return port
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port on 127.0.0.1")


def answers_dns(host: str, port: int) -> bool:
    """Any answer to a SOA query for '.' (REFUSED included): the server's DNS side is up."""
    try:
        dns.query.udp(dns.message.make_query(".", "SOA"), host, port=port, timeout=0.5)
        return True
    except (dns.exception.DNSException, OSError):
        return False


class ServerProcess:
    """One server process in a private temp dir with a free DNS port, the lifecycle all the
    test servers share. ``stop(keep_dir=True)`` + ``start()`` (or ``restart()``) brings it back
    on the same dir and ports, with whatever it stored there.

    A subclass names its program, writes its files in ``configure()``, gives ``argv()``,
    ``control_ok()`` (its control channel answers) and, unless SIGTERM will do, ``shutdown()``.
    """

    host = "127.0.0.1"
    program = ""  # in error messages
    dir_prefix = ""  # of the temp dir, e.g. "dnsctl-knot-"
    log_name = ""  # the server's log in the dir, for log_tail()
    stdout_name = ""  # where its stdout and stderr go when not into log_name
    ready_deadline = 10.0
    ready_interval = 0.02
    stop_timeout = 5.0

    def __init__(self):
        self.dir: str | None = None
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def configure(self) -> None:
        """Pick any further ports and write the config into the fresh dir."""

    def argv(self) -> list[str]:
        raise NotImplementedError

    def control_ok(self) -> bool:
        raise NotImplementedError

    def shutdown(self) -> None:
        """Ask the server to stop; stop() kills it if it lingers."""
        self.proc.terminate()

    def after_exit(self) -> None:
        """Runs once the process has exited, before its dir goes (for servers whose children outlive it)."""

    def start(self) -> Self:
        """Start the server and wait until ready; a failed start stops it and removes the dir."""
        if self.running:
            return self
        try:
            if self.dir is None:
                self.dir = tempfile.mkdtemp(prefix=self.dir_prefix)
                self.port = free_port()
                self.configure()
            self._log = open(os.path.join(self.dir, self.stdout_name or self.log_name), "ab")
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=self._log,
                                         stderr=subprocess.STDOUT)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, keep_dir: bool = False) -> None:
        """Stop the server (kill it if it lingers); remove the dir unless keep_dir.
        Safe to call twice, or after a failed start."""
        if self.proc is not None:
            if self.proc.poll() is None:
                with contextlib.suppress(subprocess.SubprocessError, OSError):
                    self.shutdown()
                try:
                    self.proc.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)
                self.after_exit()
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if not keep_dir and self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def restart(self) -> Self:
        self.stop(keep_dir=True)
        return self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def write_private(self, name: str, text: str) -> str:
        """Write a file in the dir readable by us only (configs hold keys); return its path."""
        path = os.path.join(self.dir, name)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(text)
        return path

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(os.path.join(self.dir, self.log_name), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def _wait_ready(self) -> None:
        """Ready = the control channel answers and so does DNS (any rcode)."""
        deadline = time.monotonic() + self.ready_deadline
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.program} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.control_ok() and answers_dns(self.host, self.port):
                return
            time.sleep(self.ready_interval)
        raise RuntimeError(f"{self.program} not ready after {self.ready_deadline:.0f} s:\n{self.log_tail()}")
