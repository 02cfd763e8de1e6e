"""Start dnsctl's own processes (Celery worker, MiniDNS) for integration tests, and always stop them."""
import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dns.message
import dns.query

ROOT = Path(__file__).resolve().parent.parent


class Process:
    def __init__(self, name: str, argv: list[str], env: dict):
        self.name, self.argv, self.env = name, argv, {**os.environ, **env}
        self.proc: subprocess.Popen | None = None
        self.terminated = False
        self.log = tempfile.NamedTemporaryFile(prefix=f"dnsctl-{name}-", suffix=".log", delete=False)

    def start(self):
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        return self

    def log_text(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def wait_for(self, ready, timeout=30.0, what="ready"):
        """Wait until ready(); a process that dies or never gets ready is stopped, then reported."""
        try:
            self._wait_for(ready, timeout, what)
        except BaseException:
            self.stop()
            raise

    def _wait_for(self, ready, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.log_text()[-3000:]}")
            if ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not {what} after {timeout}s:\n{self.log_text()[-3000:]}")

    def kill(self):
        """SIGKILL the process and its children (a crash, not a shutdown); the log stays for reading."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def terminate(self):
        """SIGTERM without waiting for the exit (stop() waits): several processes' shutdowns overlap."""
        if self.proc and self.proc.poll() is None and not self.terminated:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.terminated = True

    def stop(self, timeout=15.0):
        if self.log.closed:
            return
        if self.proc and self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()
        if os.environ.get("DNSCTL_KEEP_LOGS"):
            print(f"{self.name} log kept: {self.log.name}")
        else:
            os.unlink(self.log.name)


def stop_all(processes):
    """Stop every process, their shutdowns at the same time (a worker's warm shutdown takes a second or two)."""
    for process in processes:
        process.terminate()
    for process in processes:
        process.stop()


_worker_ids = itertools.count()


def celery_worker(env: dict, concurrency: int = 8, pool: str = "threads") -> Process:
    name = f"itest-{os.getpid()}-{next(_worker_ids)}"
    worker = Process("worker", [sys.executable, "-m", "celery", "-A", "dnsctl", "worker", "-l", "info",
                                "-P", pool, "-c", str(concurrency), "-n", f"{name}@%h",
                                "--without-gossip", "--without-mingle"], env).start()
    worker.nodename = f"{name}@{socket.gethostname()}"  # for remote control (app.control ... destination=)
    worker.wait_for(lambda: " ready." in worker.log_text(), what="ready")
    return worker


def celery_beat(env: dict, schedule_dir: str) -> Process:
    beat = Process("beat", [sys.executable, "-m", "celery", "-A", "dnsctl", "beat", "-l", "info",
                            "-s", os.path.join(schedule_dir, f"beat-{next(_worker_ids)}"), "--pidfile="], env).start()
    beat.wait_for(lambda: "beat: Starting..." in beat.log_text(), what="started")
    return beat


def web(env: dict, port: int, workers: int = 2) -> Process:
    """The API under gunicorn, as in production."""
    server = Process("web", [sys.executable, "-m", "gunicorn", "dnsctl.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(workers),
                             "--access-logfile", "-"], env).start()
    server.wait_for(lambda: "Booting worker" in server.log_text(), what="serving")
    return server


class RedisServer:
    """A private redis-server on a free port, so a test can restart it without touching anyone else's."""

    def __init__(self):
        from tests.servers import free_port

        self.port = free_port(udp_too=False)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        self.process = Process("redis", ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                         "--save", "", "--appendonly", "no"], {}).start()
        self.process.wait_for(lambda: "Ready to accept connections" in self.process.log_text(), what="ready")
        return self

    def crash(self):
        """Gone at once, with every key: this Redis keeps nothing on disk, like the machine's."""
        self.process.kill()
        self.process.stop()

    def stop(self):
        self.process.stop()


def minidns(env: dict, host: str, port: int) -> Process:
    server = Process("minidns", [sys.executable, "manage.py", "minidns", "--host", host, "--port", str(port)],
                     env).start()

    def answers():
        try:
            dns.query.udp(dns.message.make_query(".", "SOA"), host, port=port, timeout=0.2)
            return True
        except Exception:  # noqa: BLE001 - not up yet
            return False

    server.wait_for(answers, what="answering")
    return server
