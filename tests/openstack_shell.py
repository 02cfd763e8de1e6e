"""The real `openstack` CLI (python-openstackclient and the designateclient plugin), kept ready.

Each command runs in a process of its own, forked from one that has imported the client, its plugins'
command modules and the installed distributions' list (what every `openstack` process reads first):
a fresh process per command, through the script's own entry point (openstackclient.shell.main), for
about a tenth of the 1.5-2 s a new interpreter spends importing all that again.
"""
import json
import os
import select
import subprocess
import sys
import tempfile

RUNNER = r"""
import contextlib, importlib, io, json, os, sys
sys.argv[0] = "openstack"
from importlib.metadata import distributions
from cliff import command
from openstackclient.shell import main

for ep in (ep for dist in distributions() for ep in dist.entry_points):
    if ep.group.startswith("openstack."):
        with contextlib.suppress(Exception):  # the command itself reports a plugin that fails to load
            importlib.import_module(ep.module)
command._get_distributions_by_modules()
for line in sys.stdin:
    if os.fork():
        os.wait()
        continue
    out, err, code = io.StringIO(), io.StringIO(), 1
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(json.loads(line))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        print(json.dumps({"returncode": code, "stdout": out.getvalue(), "stderr": err.getvalue()}), flush=True)
        os._exit(0)
"""


class OpenStackShell:
    """`openstack ARGS...` as run(*args) -> subprocess.CompletedProcess; nothing comes from a clouds.yaml
    or an rc file (no OS_* variables)."""

    def __init__(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        self.errors = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-c", RUNNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.errors, text=True, env=env)

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        self.proc.stdin.write(json.dumps(list(args)) + "\n")
        self.proc.stdin.flush()
        if not select.select([self.proc.stdout], [], [], timeout)[0]:
            raise TimeoutError(f"openstack {' '.join(args)}: no answer in {timeout} s")
        line = self.proc.stdout.readline()
        if not line:
            self.errors.seek(0)
            raise RuntimeError(f"the openstack runner exited: {self.errors.read().decode(errors='replace')[-3000:]}")
        result = json.loads(line)
        return subprocess.CompletedProcess(["openstack", *args], result["returncode"], result["stdout"],
                                           result["stderr"])

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc.stdout.close()
        self.errors.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
