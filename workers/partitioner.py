"""Which of the 4,096 shards each live producer sweeps.

The split is consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam 2016): each
shard ranks the members by a hash of (member, shard) and goes to the first one that still has
room, and every member has room for an even share (the counts differ by at most one). A member
joining or leaving moves little more than the share it takes or gives back, where splitting into
contiguous ranges would move about half of all shards.

Membership is tooz's: members join a group and heartbeat; a member that stops heartbeating drops
out of `get_members()` after the driver's membership timeout and the others re-split.
"""
import hashlib
import logging
from functools import lru_cache

from tooz import coordination

log = logging.getLogger(__name__)
SHARDS = 4096


def _rank(member: str, shard: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"{member}/{shard}".encode(), digest_size=8).digest(), "big")


@lru_cache(maxsize=8)
def assignment(members: frozenset[str], shards: int = SHARDS) -> dict[str, frozenset[int]]:
    """{member: its shards}: every shard owned by exactly one member, shares differing by at most one."""
    if not members:
        return {}
    base, extra = divmod(shards, len(members))
    # Who gets the extra shard depends on the members only, so every member computes the same split.
    by_luck = sorted(members, key=lambda m: _rank(m, -1))
    room = {m: base + (i < extra) for i, m in enumerate(by_luck)}
    owned: dict[str, set[int]] = {m: set() for m in members}
    for shard in range(shards):
        for member in sorted(members, key=lambda m: _rank(m, shard), reverse=True):
            if room[member]:
                room[member] -= 1
                owned[member].add(shard)
                break
    return {m: frozenset(s) for m, s in owned.items()}


class Partitioner:
    """This process's membership in a tooz group, and its current shards (none while it cannot tell)."""

    def __init__(self, coordinator, member: str, group: str):
        self.coordinator, self.member, self.group = coordinator, member, group.encode()

    def join(self):
        try:
            self.coordinator.create_group(self.group).get()
        except coordination.GroupAlreadyExist:
            pass
        try:
            self.coordinator.join_group(self.group).get()
        except coordination.MemberAlreadyExist:
            pass

    def leave(self):
        try:
            self.coordinator.leave_group(self.group).get()
        except Exception as exc:  # noqa: BLE001 - as in my_shards; the others re-split when we expire
            log.warning("leaving group %s failed: %r", self.group, exc)

    def members(self) -> frozenset[str]:
        return frozenset(m.decode() for m in self.coordinator.get_members(self.group).get())

    def my_shards(self) -> frozenset[int]:
        """This member's shards now; none when the coordination backend is unreachable, so a producer
        that lost it stops claiming shards the others are about to take over."""
        try:
            try:
                members = self.members()
            except coordination.GroupNotCreated:  # the backend lost its data (a restart without persistence)
                members = frozenset()
            if self.member not in members:  # expired while cut off, or never joined: (re)join
                self.join()
                members = self.members()
        except Exception as exc:  # noqa: BLE001 - tooz's futures also raise the driver's own errors
            log.warning("coordination unavailable, claiming no shards: %r", exc)
            return frozenset()
        return assignment(members).get(self.member, frozenset())
