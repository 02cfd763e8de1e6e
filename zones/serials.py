"""Zone serials: RFC 1982 arithmetic in one place, so a serial never moves backwards."""
import time

from dns.serial import Serial

SERIAL_BITS = 32


def next_serial(current: int, now: float | None = None) -> int:
    """The serial after `current`: unix time when that is newer, else current + 1 (wrapping)."""
    now = int(time.time() if now is None else now) % 2**SERIAL_BITS
    bumped = (current + 1) % 2**SERIAL_BITS
    return now if Serial(now, SERIAL_BITS) > Serial(bumped, SERIAL_BITS) else bumped


def is_newer(candidate: int, than: int) -> bool:
    return Serial(candidate, SERIAL_BITS) > Serial(than, SERIAL_BITS)


def reached(observed: int | None, wanted: int) -> bool:
    """True when a nameserver serving `observed` has at least the `wanted` serial."""
    return observed is not None and Serial(observed, SERIAL_BITS) >= Serial(wanted, SERIAL_BITS)
