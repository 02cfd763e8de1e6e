"""Consensus math: pure functions, no DB, no network. Serial comparisons follow RFC 1982."""
from functools import cmp_to_key

from zones.serials import reached


def threshold_met(count: int, total: int, threshold_percentage: int) -> bool:
    """True when `count` of `total` is at least the threshold (integer math: ties pass)."""
    if total <= 0:
        return False
    return count * 100 >= threshold_percentage * total


def consensus_serial(serials: list[int | None], threshold_percentage: int) -> int | None:
    """The highest serial that at least threshold% of the nameservers have reached.

    None stands for a nameserver that did not answer or does not serve the zone: it counts in
    the total but reaches nothing. A nameserver ahead of the others reaches every lower serial.
    """
    answered = {s for s in serials if s is not None}
    for candidate in sorted(answered, key=cmp_to_key(_rfc1982_cmp), reverse=True):
        count = sum(1 for s in serials if reached(s, candidate))
        if threshold_met(count, len(serials), threshold_percentage):
            return candidate
    return None


def _rfc1982_cmp(a: int, b: int) -> int:
    return -1 if reached(b, a) and a != b else (0 if a == b else 1)
