#!/usr/bin/env python
"""Fuzz the API as deployed: schemathesis sends generated requests, valid and invalid, to every
operation of /v2/schema on gunicorn with PostgreSQL, as a member and as an admin, and reports any
answer that is a server error.

    bench/fuzz_api.py                  # 200 examples per operation and role, a random seed
    bench/fuzz_api.py -n 1000 --seed 7 --checks all

It makes its own database (dnsctl_fuzz) and uses Redis db 12; path parameters are real objects'
ids (a zone, a recordset, a pool, a TLD, a blacklist, a token, a project), so bodies reach the
code behind the 404. Exit status 1 if any check failed. The test suite runs a short deterministic
version of the same (tests/test_api_fuzz.py).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def prepare():
    """A fresh database with one of everything; returns (ids, member key, admin key, env)."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ.setdefault("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dnsctl_fuzz")
    os.environ.setdefault("TEST_REDIS_URL", "redis://127.0.0.1:6379/12")
    os.environ.setdefault("API_WRITE_RATE", "")  # a load generator: its writes are not rate-limited
    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from bench.propagation import _create_database
    from tests.fakes import one_of_everything

    _create_database(connection.settings_dict)
    call_command("migrate", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    world = one_of_everything()
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": os.environ["TEST_DATABASE_URL"],
           "REDIS_URL": settings.REDIS_URL, "CONN_MAX_AGE": "300", "API_WRITE_RATE": "",
           "CELERY_TASK_ALWAYS_EAGER": "0", "LOG_LEVEL": "WARNING"}
    return world["ids"], world["keys"]["member"], world["keys"]["admin"], env


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--max-examples", type=int, default=200, help="per operation and role")
    parser.add_argument("--seed", type=int, help="for a run that can be repeated")
    parser.add_argument("--checks", default="not_a_server_error",
                        help="schemathesis checks (default: not_a_server_error; 'all' for every one)")
    args = parser.parse_args()
    schemathesis = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
    ids, member, admin, env = prepare()

    from tests.processes import web
    from tests.servers import free_port

    port = free_port(udp_too=False)
    server = web({**os.environ, **env}, port)
    results = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "schemathesis.toml"
            config.write_text("[parameters]\n" + "".join(f'"path.{k}" = "{v}"\n' for k, v in ids.items()))
            for role, headers in (("member", [f"X-Auth-Token: {member}"]),
                                  ("admin", [f"X-Auth-Token: {admin}", "X-Auth-All-Projects: true"])):
                command = [schemathesis, "--config-file", str(config), "run",
                           f"http://127.0.0.1:{port}/v2/schema?format=json", "--url", f"http://127.0.0.1:{port}",
                           "--checks", args.checks, "--mode", "all", "--max-examples", str(args.max_examples),
                           "--workers", "4", "--no-color", "--suppress-health-check", "all"]
                command += [item for header in headers for item in ("-H", header)]
                if args.seed is not None:
                    command += ["--seed", str(args.seed)]
                print(f"== as {role}: {' '.join(command[3:6])} ...", flush=True)
                results[role] = subprocess.run(command, cwd=tmp).returncode
    finally:
        server.stop()
    print("\n".join(f"{role}: {'no failures' if code == 0 else f'FAILURES (exit {code})'}"
                    for role, code in results.items()))
    sys.exit(0 if all(code == 0 for code in results.values()) else 1)


if __name__ == "__main__":
    main()
