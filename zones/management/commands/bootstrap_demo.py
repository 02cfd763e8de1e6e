"""Set up a demo on a fresh install: an admin with a token, a default pool, and the supervisor's
configuration (RUN_DIR/supervisord.conf) that bin/start runs.

Idempotent: running it again keeps the admin, the token and the pool it made before. The token's
key can be shown only when it is made, so it is kept in RUN_DIR/api-token (0600) and used again
while it still authenticates; otherwise a new token replaces it there. A demo pool made before
BIND9 was installed gets the private BIND9 as its target (and nameserver) once it is.
"""
import base64
import os
import secrets
import shutil
import sys
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from workers.backends.bind9 import named_conf
from zones import accounts
from zones.models import Pool
from zones.services import pools


class Command(BaseCommand):
    help = "Create the demo admin, token and pool, and write RUN_DIR/supervisord.conf for bin/start."

    def add_arguments(self, parser):
        parser.add_argument("--run-dir", default=".run")
        parser.add_argument("--api-port", type=int, default=int(os.environ.get("API_PORT", 8000)))
        parser.add_argument("--minidns-port", type=int, default=int(os.environ.get("MINIDNS_PORT", 5354)))
        parser.add_argument("--bind-port", type=int, default=int(os.environ.get("DEMO_BIND_PORT", 5301)))
        parser.add_argument("--rndc-port", type=int, default=int(os.environ.get("DEMO_RNDC_PORT", 9531)))
        parser.add_argument("--startsecs", type=int, default=2,
                            help="seconds a program must stay up to count as started (supervisord's startsecs)")

    def handle(self, *args, run_dir, api_port, minidns_port, bind_port, rndc_port, startsecs, **options):
        run = Path(run_dir).resolve()
        run.mkdir(parents=True, exist_ok=True)
        password_file = run / "admin-password"
        user = get_user_model().objects.filter(username="admin").first()
        if user is None:
            password = secrets.token_urlsafe(12)
            user = get_user_model().objects.create_superuser("admin", "admin@localhost", password)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        accounts.api_user("admin", "demo", accounts.Role.ADMIN)
        token_file = run / "api-token"
        token_key = self.demo_token(user, token_file)

        procs = {
            "web": f"gunicorn -c python:dnsctl.gunicorn dnsctl.wsgi -b 127.0.0.1:{api_port} -w 2 --access-logfile -",
            "worker": "celery -A dnsctl worker -l info -P threads -c 8",
            "beat": f"celery -A dnsctl beat -l info -s {run / 'celerybeat-schedule'}",
            "minidns": f"python manage.py minidns --host 127.0.0.1 --port {minidns_port}",
            "producer": "python manage.py producer",
        }
        named = shutil.which("named") or (os.path.exists("/usr/sbin/named") and "/usr/sbin/named")
        pool = Pool.objects.filter(name="default").first()
        if named:
            bind_dir = run / "bind9"
            bind_dir.mkdir(exist_ok=True)
            secret_file = bind_dir / "rndc.secret"
            if not secret_file.exists():
                secret_file.write_text(base64.b64encode(os.urandom(32)).decode())
                secret_file.chmod(0o600)
            secret = secret_file.read_text().strip()
            (bind_dir / "named.conf").write_text(named_conf(
                directory=str(bind_dir), port=bind_port, rndc_port=rndc_port, rndc_secret=secret))
            procs["bind9"] = f"{named} -g -c {bind_dir / 'named.conf'}"
            target = {"name": "bind9-demo", "type": "bind9", "masters": [f"127.0.0.1:{minidns_port}"],
                      "options": {"host": "127.0.0.1", "port": bind_port, "rndc_host": "127.0.0.1",
                                  "rndc_port": rndc_port, "rndc_key_secret": secret}}
            nameserver = {"host": "127.0.0.1", "port": bind_port, "name": "ns1.dnsctl.test."}
            if pool is None:
                pools.save_pool(
                    None, name="default", description="Demo pool: one private BIND9",
                    ns_records=[{"hostname": "ns1.dnsctl.test.", "priority": 1}],
                    targets=[target], nameservers=[nameserver])
            elif not pool.targets.exists():  # made before BIND9 was installed: give it the target now
                pools.save_pool(
                    pool, name=pool.name, description="Demo pool: one private BIND9",
                    threshold_percentage=pool.threshold_percentage, targets=[target],
                    nameservers=None if pool.nameservers.exists() else [nameserver])
                self.stdout.write("The demo pool 'default' had no target: BIND9 (bind9-demo) is its target now.")
        elif pool is None:
            pools.save_pool(None, name="default", description="Demo pool: add a target",
                               ns_records=[{"hostname": "ns1.dnsctl.test.", "priority": 1}])
        conf = run / "supervisord.conf"
        conf.touch(mode=0o600)
        conf.chmod(0o600)
        conf.write_text(supervisord_conf(run, procs, minidns_port, startsecs))

        api = f"http://127.0.0.1:{api_port}"
        lines = [
            "",
            "dnsctl is starting:",
            f"  API       {api}/v2/zones   (docs: {api}/v2/docs, schema: {api}/v2/schema)",
            f"  admin     {api}/admin/     user 'admin', password in {password_file}",
            f"  token     {token_key}      (header X-Auth-Token, project 'demo'; kept in {token_file})",
            f"  MiniDNS   127.0.0.1:{minidns_port}",
            f"  health    {api}/health   metrics: {api}/metrics   overview: {api}/admin/overview/",
            f"  processes supervisorctl -c {run / 'supervisord.conf'} status   (one that dies is restarted)",
        ]
        if named:
            lines.append(f"  BIND9     127.0.0.1:{bind_port} (rndc 127.0.0.1:{rndc_port}), the demo pool's target")
        else:
            lines += ["  BIND9 is not installed, so the demo pool has no target: zones will go to ERROR.",
                      "  Install it (apt-get install bind9 bind9-utils) and run bin/start again, or add a",
                      "  server of any kind: python manage.py target_config --type bind9|knot|pdns|nsd",
                      "  prints its setup and the configure_pool line that adds it (README)."]
        lines += [f"  try:      curl -s -H 'X-Auth-Token: {token_key}' -H 'Content-Type: application/json' \\",
                  f"              -d '{{\"name\": \"example.test.\", \"email\": \"admin@example.test\"}}' {api}/v2/zones",
                  ""]
        sys.stdout.write("\n".join(lines) + "\n")

    @staticmethod
    def demo_token(user, token_file: Path) -> str:
        """The key in token_file if it is still a live token of the demo admin's, else a new one written there."""
        key = token_file.read_text().strip() if token_file.exists() else ""
        token = accounts.find_token(key) if key else None
        if token is not None and token.user_id == user.id and not token.expired:
            return key
        key = accounts.issue_token(user, description="bin/start demo")
        token_file.touch(mode=0o600)
        token_file.chmod(0o600)
        token_file.write_text(key + "\n")
        return key


def supervisord_conf(run: Path, procs: dict[str, str], minidns_port: int, startsecs: int = 2) -> str:
    """supervisord's configuration: every process in the foreground of bin/start, its output on the
    terminal, restarted when it dies (the others keep running); Ctrl-C or SIGTERM stops them all.
    Each runs in its own process group, so a stop reaches a process's children (gunicorn's
    workers, named's threads) and a Ctrl-C reaches only supervisord, which stops them in order.
    supervisorctl reads the same file (0600) for the control socket's password."""
    password = secrets.token_urlsafe(16)
    lines = [
        "; Written by `manage.py bootstrap_demo` (bin/start); rewritten on every start.",
        "[supervisord]",
        "nodaemon=true",
        *(["user=root"] if os.geteuid() == 0 else []),  # say so, or supervisord warns that it is root
        "logfile=/dev/stdout",
        "logfile_maxbytes=0",
        f"pidfile={run / 'supervisord.pid'}",
        # /health asks this MiniDNS; every process inherits the rest of bin/start's environment.
        f'environment=MINIDNS_HOST="127.0.0.1",MINIDNS_PORT="{minidns_port}"',
        "",
        "[unix_http_server]",
        f"file={run / 'supervisor.sock'}",
        "chmod=0700",
        "username=dnsctl",
        f"password={password}",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{run / 'supervisor.sock'}",
        "username=dnsctl",
        f"password={password}",
    ]
    for name, command in procs.items():
        lines += [
            "",
            f"[program:{name}]",
            f"command={command}",
            f"directory={settings.BASE_DIR}",
            "autorestart=true",
            f"startsecs={startsecs}",  # up this long counts as started; a process failing sooner is retried
            "startretries=10",  # with a growing pause, before supervisord gives up on it (FATAL)
            "stopasgroup=true",
            "killasgroup=true",
            "stopwaitsecs=15",
            "redirect_stderr=true",
            "stdout_logfile=/dev/stdout",
            "stdout_logfile_maxbytes=0",
        ]
    return "\n".join(lines) + "\n"
