"""Real DNS servers run as subprocesses/threads on 127.0.0.1 for integration tests."""

import socket


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
