#!/usr/bin/env python
"""CPU and wall time per BIND9 control-channel call: N zones through Bind9Backend's create,
update and delete against a private named, counting this process and the children it waited for
(an `rndc` process per call, before workers/rndc.py).

    bench/bind9_calls.py [-n 100]
"""
import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def cpu() -> float:
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100, help="zones (three calls each)")
    n = parser.parse_args().n
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from tests.servers.bind9 import Bind9Server
    from workers.backends.bind9 import Bind9Backend

    with Bind9Server(primary=("127.0.0.1", 9)) as server:  # the zones never need to transfer
        backend = Bind9Backend("bench", server.backend_options, [("127.0.0.1", 9)])
        cpu0, wall0 = cpu(), time.monotonic()
        for i in range(n):
            zone = f"z{i}.calls.bench.test."
            backend.create_zone(zone)
            backend.update_zone(zone)
            backend.delete_zone(zone)
        calls = 3 * n
        print(f"{calls} calls: {1000 * (cpu() - cpu0) / calls:.2f} ms CPU, "
              f"{1000 * (time.monotonic() - wall0) / calls:.1f} ms wall per call")


if __name__ == "__main__":
    main()
