"""Consensus math: pure functions, no DB, no network. Serial comparisons follow RFC 1982.

A verdict carries two reasons: the operator's (servers by name and address, with what they said)
and the tenant's, which names nameservers only by their public NS name and says nothing of
targets, control channels or server messages."""
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


def targets_verdict(action: str, threshold: int, errors: dict[str, str | None]) -> tuple[bool, str, str]:
    """Did enough targets apply the action? errors: target name -> None (done) or the failure.

    DELETE needs every target: a zone left on one server would still be served.
    Returns (ok, operator's reason, tenant's reason).
    """
    threshold = 100 if action == "DELETE" else threshold
    succeeded = sum(1 for e in errors.values() if e is None)
    if threshold_met(succeeded, len(errors), threshold):
        return True, "", ""
    failures = "; ".join(f"{name}: {e}" for name, e in errors.items() if e is not None)
    summary = f"{action} succeeded on {succeeded} of {len(errors)} {{}}, {threshold}% needed."
    return False, f"{summary.format('targets')} {failures}".strip(), summary.format("servers")


def nameservers_verdict(action: str, serial: int, threshold: int,
                        observed: dict[str, tuple[int | None, bool, str]],
                        names: dict[str, str] | None = None) -> tuple[bool, str, str]:
    """Do enough nameservers serve the change? observed: address -> (serial seen, done, message);
    names: address -> the nameserver's public name (its NS hostname), for the tenant's reason.

    For DELETE, done means the nameserver no longer serves the zone; otherwise the consensus
    serial (the highest one threshold% have reached) must have reached the zone's serial.
    Returns (ok, operator's reason, tenant's reason).
    """
    threshold = 100 if action == "DELETE" else threshold
    done = sum(1 for _, ok, _ in observed.values() if ok)
    if action == "DELETE":
        ok = threshold_met(done, len(observed), threshold)
    else:
        ok = reached(consensus_serial([seen for seen, _, _ in observed.values()], threshold), serial)
    if ok:
        return True, "", ""
    behind = [address for address, (_, ok_, _) in observed.items() if not ok_]
    lagging = "; ".join(f"{address}: {observed[address][2]}" for address in behind)
    what = "dropped the zone" if action == "DELETE" else f"serve serial {serial}"
    summary = f"{done} of {len(observed)} nameservers {what}, {threshold}% needed."
    public = ", ".join((names or {}).get(address, "a nameserver") for address in behind)
    return False, f"{summary} {lagging}".strip(), f"{summary} Not yet: {public}."
