"""The production-like deployment for bench/propagation.py --deployment: every process private.

As docker-compose runs it, on loopback: PostgreSQL (a private cluster, so its CPU is ours alone),
Redis, gunicorn with 3 workers, the Celery worker with 16 threads, beat, MiniDNS and one BIND9
target. `cpu()` reads each process's CPU seconds from /proc (psutil), its live descendants and
the children it has reaped (a worker's `rndc` runs, PostgreSQL's ended backends), so a phase's
cost is the difference of two readings. `Profiler` runs py-spy on the Python processes and writes
collapsed stacks (open them in speedscope.app, or feed flamegraph.pl) and a top-functions summary.
"""
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
PY_SPY = os.environ.get("PY_SPY", str(Path(sys.executable).with_name("py-spy")))


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process, its live descendants and the children they have waited for."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


class PrivatePostgres:
    """initdb + postgres on a free port in a temp dir (as the postgres user when run as root); with
    `statements`, pg_stat_statements counts every statement (see Deployment.statements)."""

    def __init__(self, statements: bool = False):
        from tests.servers import free_port

        self.statements = statements
        self.port = free_port(udp_too=False)
        self.dir = tempfile.mkdtemp(prefix="dnsctl-bench-pg-")
        self.proc = None

    def _as_owner(self, argv):
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv

    def start(self):
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        subprocess.run(self._as_owner([str(PG_BIN / "initdb"), "-D", f"{self.dir}/data", "-A", "trust",
                                       "-U", "postgres", "--no-sync"]), check=True, capture_output=True)
        self.proc = subprocess.Popen(self._as_owner([str(PG_BIN / "postgres"), "-D", f"{self.dir}/data",
                                                     "-p", str(self.port), "-k", self.dir,
                                                     "-c", "listen_addresses=127.0.0.1", *self._options()]),
                                     stdout=subprocess.DEVNULL, stderr=open(f"{self.dir}/pg.log", "w"),
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while subprocess.run([str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                             capture_output=True).returncode != 0:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"PostgreSQL did not start: {Path(self.dir, 'pg.log').read_text()[-2000:]}")
            time.sleep(0.1)
        subprocess.run([str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                        "dnsctl"], check=True)
        if self.statements:
            subprocess.run([str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-q",
                            "-d", "dnsctl", "-c", "CREATE EXTENSION pg_stat_statements"], check=True)
        return self

    def _options(self):
        if not self.statements:
            return []
        return ["-c", "shared_preload_libraries=pg_stat_statements", "-c", "pg_stat_statements.track=all",
                "-c", "pg_stat_statements.max=5000"]

    @property
    def url(self):
        return f"postgres://postgres@127.0.0.1:{self.port}/dnsctl"

    @property
    def pid(self):
        """The postmaster (runuser's child when run as root): backends are its children."""
        proc = psutil.Process(self.proc.pid)
        return next((p.pid for p in proc.children() if p.name() == "postgres"), proc.pid)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


class Deployment:
    """Start everything, configure a pool with the one BIND9 target and a token; stop it all."""

    def __init__(self, workers: int = 3, threads: int = 16, extra_env: dict | None = None, statements=False):
        self.workers, self.threads, self.extra_env = workers, threads, extra_env or {}
        self.count_statements = statements
        self.started, self.pids = [], {}
        self.rundir = tempfile.mkdtemp(prefix="dnsctl-bench-run-")

    def _keep(self, thing, name=None, pid=None):
        self.started.append(thing)
        if name:
            self.pids[name] = pid
        return thing

    def start(self):
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self):
        from tests.processes import Process, RedisServer
        from tests.servers import free_port

        pg = self._keep(PrivatePostgres(self.count_statements).start())
        self.pids["postgres"] = pg.pid
        redis = self._keep(RedisServer().start())
        self.pids["redis"] = redis.process.proc.pid
        base = redis.url.rsplit("/", 1)[0]
        self.env = {"DJANGO_SETTINGS_MODULE": "dnsctl.settings", "DATABASE_URL": pg.url,
                    "REDIS_URL": f"{base}/0", "COORDINATION_URL": f"{base}/1",
                    "SECRET_KEY": "bench-only-not-a-secret", "ALLOWED_HOSTS": "127.0.0.1,localhost",
                    "API_WRITE_RATE": "",  # a load generator: its writes are not rate-limited
                    "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
                    "PROMETHEUS_MULTIPROC_DIR": self._dir("metrics"), **self.extra_env}
        os.environ.update(self.env)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from django.db import connections

        from tests.servers.bind9 import Bind9Server

        self.mhost, self.mport = "127.0.0.1", free_port()
        minidns = self._keep(Process("minidns", [sys.executable, "manage.py", "minidns", "--host", self.mhost,
                                                 "--port", str(self.mport)], self.env).start())
        minidns.wait_for(lambda: _answers(self.mhost, self.mport), what="answering")
        self.pids["minidns"] = minidns.proc.pid
        bind = self._keep(Bind9Server(primary=(self.mhost, self.mport)).start())
        self.pids["named"] = bind.proc.pid
        self.target = (bind.host, bind.port)
        worker = self._keep(Process("worker", [sys.executable, "-m", "celery", "-A", "dnsctl", "worker", "-l",
                                               "warning", "-P", "threads", "-c", str(self.threads),
                                               "-n", f"bench-{os.getpid()}@%h"], self.env).start())
        worker.wait_for(lambda: _worker_ready(self.env["REDIS_URL"]), timeout=60, what="ready")
        self.pids["worker"] = worker.proc.pid
        beat = self._keep(Process("beat", [sys.executable, "-m", "celery", "-A", "dnsctl", "beat", "-l", "info",
                                           "-s", os.path.join(self.rundir, "beat"), "--pidfile="],
                                  self.env).start())
        beat.wait_for(lambda: "beat: Starting..." in beat.log_text(), what="started")
        self.pids["beat"] = beat.proc.pid
        port = free_port(udp_too=False)
        web = self._keep(Process("web", [sys.executable, "-m", "gunicorn", "dnsctl.wsgi", "-b", f"127.0.0.1:{port}",
                                         "-w", str(self.workers)], self.env).start())
        web.wait_for(lambda: web.log_text().count("Booting worker") >= self.workers, what="serving")
        self.pids["gunicorn"] = web.proc.pid
        self.url = f"http://127.0.0.1:{port}"

        from zones import accounts
        from zones.services import pools

        pools.save_pool(None, name="default", ns_records=[{"hostname": "ns1.bench.test.", "priority": 1}],
                           notify_source=self.mhost,
                           targets=[{"name": "bind-1", "type": "bind9", "options": bind.backend_options,
                                     "masters": [f"{self.mhost}:{self.mport}"]}],
                           nameservers=[{"host": bind.host, "port": bind.port}])
        self.token = accounts.issue_token(accounts.api_user("bench", "bench"), expires_in=0)
        connections.close_all()
        self._warm_up()

    def _warm_up(self):
        """Gunicorn's workers import the app on their first request: make that happen before any
        phase is timed (a few concurrent calls reach every worker)."""
        import concurrent.futures as futures

        import requests

        def call(_):
            requests.get(f"{self.url}/v2/zones", headers={"X-Auth-Token": self.token}, timeout=60).raise_for_status()

        with futures.ThreadPoolExecutor(3 * self.workers) as pool:
            for _ in range(3):
                list(pool.map(call, range(3 * self.workers)))

    def _dir(self, name):
        path = os.path.join(self.rundir, name)
        os.makedirs(path, exist_ok=True)
        return path

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of each part (with its children), and of this client."""
        found = {name: _tree_cpu(pid) for name, pid in self.pids.items()}
        me = psutil.Process().cpu_times()
        found["bench client"] = me.user + me.system
        return found

    def connections(self) -> dict[str, int]:
        """Connections opened so far: PostgreSQL sessions of dnsctl's database, Redis clients."""
        import psycopg2
        import redis

        with psycopg2.connect(self.env["DATABASE_URL"]) as conn, conn.cursor() as cur:
            cur.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
            sessions = cur.fetchone()[0]
        conn.close()
        clients = redis.Redis.from_url(self.env["REDIS_URL"]).info("stats")["total_connections_received"]
        return {"PostgreSQL": sessions, "Redis": clients}

    def statements(self, changes: int | None = None, top: int = 25) -> str:
        """With `statements`: what PostgreSQL ran since the last call (pg_stat_statements, then reset), the
        statements by total time with calls per change, so a change's queries can be counted and weighed."""
        import psycopg2

        with psycopg2.connect(self.env["DATABASE_URL"]) as conn, conn.cursor() as cur:
            cur.execute("SELECT calls, total_exec_time, regexp_replace(query, '\\s+', ' ', 'g') FROM pg_stat_statements"
                        " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
                        " ORDER BY total_exec_time DESC")
            rows = cur.fetchall()
            cur.execute("SELECT pg_stat_statements_reset()")
        conn.close()
        if changes is None:
            return ""
        per = max(changes, 1)
        calls, ms = sum(r[0] for r in rows), sum(r[1] for r in rows)
        lines = [f"statements: {calls / per:.1f} per change, {ms / per:.2f} ms of execution per change",
                 f"{'calls/change':>12} {'ms/change':>9}  statement (by total execution time)"]
        lines += [f"{c / per:12.2f} {t / per:9.3f}  {q[:160]}" for c, t, q in rows[:top]]
        return "\n".join(lines)

    def python_pids(self) -> dict[str, int]:
        return {name: self.pids[name] for name in ("worker", "gunicorn", "minidns", "beat")}

    def stop(self):
        for thing in reversed(self.started):  # every one, even when stopping another failed
            try:
                thing.stop()
            except Exception as exc:  # noqa: BLE001
                print(f"stopping {thing!r} failed: {exc!r}", file=sys.stderr)
        shutil.rmtree(self.rundir, ignore_errors=True)


def _answers(host, port):
    from tests.servers import answers_dns

    return answers_dns(host, port)


def _worker_ready(redis_url):
    """The worker has written its heartbeat (workers/heartbeat.py): its consumer takes tasks."""
    from dnsctl.celery import app

    try:
        return bool(app.control.ping(timeout=0.5))
    except Exception:  # noqa: BLE001 - broker not answering yet
        return False


def kernel_drops() -> dict[str, int]:
    """What the kernel dropped, machine-wide (from /proc/net/netstat and /proc/net/snmp; 0 where it
    cannot be read): connections refused by a listener's full accept queue (each costs its client a
    SYN retransmit, a second or more; named's control channel listens with a backlog of 5), and
    datagrams refused by a socket's full receive buffer (a lost DNS query or answer, asked again only
    after the asker's timeout)."""
    def counters(path, prefix):
        try:
            lines = [line.split() for line in Path(path).read_text().splitlines() if line.startswith(prefix)]
            return dict(zip(lines[0], lines[1]))
        except (OSError, IndexError):
            return {}

    tcp, udp = counters("/proc/net/netstat", "TcpExt:"), counters("/proc/net/snmp", "Udp:")
    return {"listen queue": int(tcp.get("ListenOverflows", 0)), "UDP receive buffer": int(udp.get("RcvbufErrors", 0))}


def cpu_table(before: dict, after: dict, changes: int) -> str:
    """Per part: CPU seconds between two readings and ms per change."""
    rows = sorted(((after[k] - before.get(k, 0.0), k) for k in after), reverse=True)
    total = sum(sec for sec, name in rows if name != "bench client")
    lines = [f"    {'process':<13} {'CPU s':>7} {'ms/change':>10}"]
    lines += [f"    {name:<13} {sec:7.2f} {1000 * sec / max(changes, 1):10.1f}" for sec, name in rows]
    lines.append(f"    {'dnsctl total':<13} {total:7.2f} {1000 * total / max(changes, 1):10.1f}"
                 f"   (everything but the bench client)")
    return "\n".join(lines)


# -- profiling ------------------------------------------------------------------------------------
CATEGORIES = [  # (label, test on one frame "function (file:line)"); a sample counts once per label
    ("SQL (psycopg2 / Django DB)", lambda f: "psycopg2" in f or "django/db/" in f),
    ("new DB connection", lambda f: "get_new_connection (" in f or f.startswith("connect (psycopg2")),
    ("DB health check (CONN_HEALTH_CHECKS)", lambda f: f.startswith("DatabaseWrapper.is_usable (")),
    ("Redis / broker / results", lambda f: any(s in f for s in ("redis/", "kombu/", "celery/backends/"))),
    ("subprocess (rndc)", lambda f: "subprocess.py" in f),
    ("Django REST framework", lambda f: "rest_framework/" in f),
    ("dnspython", lambda f: f.split("(", 1)[-1].startswith("dns/")),
]


class Profiler:
    """py-spy record on each Python process while the load runs; stop() writes the summaries."""

    def __init__(self, outdir: str, pids: dict[str, int], rate: int = 50):
        self.outdir, self.pids, self.rate, self.procs = Path(outdir), pids, rate, {}
        self.outdir.mkdir(parents=True, exist_ok=True)

    def start(self, label: str):
        for name, pid in self.pids.items():
            out = self.outdir / f"{label}-{name}.txt"
            argv = [PY_SPY, "record", "--pid", str(pid), "--rate", str(self.rate), "--format", "raw",
                    "--output", str(out), "--subprocesses", "--nonblocking"]
            self.procs[(label, name)] = (subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                                          stderr=subprocess.PIPE), out)
        time.sleep(0.5)  # py-spy attaches

    def stop(self, label: str) -> str:
        report = []
        for (lab, name), (proc, out) in list(self.procs.items()):
            if lab != label:
                continue
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            del self.procs[(lab, name)]
            if out.exists():
                report.append(summarize(out, f"{label} / {name}"))
            else:
                report.append(f"== {label} / {name}: no profile ({proc.stderr.read().decode()[-300:]})")
        text = "\n\n".join(report)
        (self.outdir / f"{label}-summary.txt").write_text(text + "\n")
        return text


def summarize(path: Path, title: str, top: int = 25) -> str:
    """Share of samples per category, top functions (inclusive; dnsctl's own; own time).

    py-spy counts a thread waiting on a socket read in C (a SQL or Redis round trip) as busy: the
    categories are where the process's threads spend their time, not only CPU."""
    inclusive, own, cats, total = collections.Counter(), collections.Counter(), collections.Counter(), 0
    ours = collections.Counter()  # dnsctl's own functions (workers/, zones/, dnsctl/), inclusive
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [re.sub(r":\d+\)$", ")", f.strip()) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += n
        for f in set(frames):
            inclusive[f] += n
            if f.split("(", 1)[-1].startswith(("workers/", "zones/", "dnsctl/")):
                ours[f] += n
        own[frames[-1]] += n
        for label, test in CATEGORIES:
            if any(test(f) for f in frames):
                cats[label] += n
    if not total:
        return f"== {title}: no samples"
    out = [f"== {title}: {total} samples ({path.name})", "  by category (a sample can be in several):"]
    out += [f"    {100 * n / total:5.1f}%  {label}" for label, n in cats.most_common()]
    out.append("  top functions, inclusive:")
    out += [f"    {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top) if "(" + "<frozen" not in f]
    out.append("  dnsctl's functions, inclusive:")
    out += [f"    {100 * n / total:5.1f}%  {f}" for f, n in ours.most_common(top)]
    out.append("  top functions, own time:")
    out += [f"    {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top // 2)]
    return "\n".join(out)
