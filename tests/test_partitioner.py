"""The partitioner: every shard has exactly one owner, shares are even, few shards move on a join or
a leave; membership is tooz's, and a member cut off from coordination claims nothing until it is back."""
import uuid

import pytest
from django.conf import settings
from tooz import coordination

from tests.conftest import wait_until
from tests.test_outbox import RedisServer, needs_redis_server
from workers.coordination import tooz_url
from workers.partitioner import SHARDS, Partitioner, assignment


def members(n: int) -> frozenset[str]:
    return frozenset(f"host{i}-{1000 + i}-{i:08x}" for i in range(n))


def owners(split: dict[str, frozenset[int]]) -> dict[int, str]:
    return {shard: member for member, shards in split.items() for shard in shards}


@pytest.mark.parametrize("n", range(1, 13))
def test_every_shard_has_exactly_one_owner_and_shares_are_even(n):
    split = assignment(members(n))
    owned = [shard for shards in split.values() for shard in shards]
    assert sorted(owned) == list(range(SHARDS))
    sizes = [len(shards) for shards in split.values()]
    assert len(sizes) == n and max(sizes) - min(sizes) <= 1


def test_no_members_own_nothing():
    assert assignment(frozenset()) == {}


@pytest.mark.parametrize("n", range(1, 12))
def test_a_join_or_a_leave_moves_little_more_than_one_share(n):
    before = owners(assignment(members(n)))
    joined = owners(assignment(members(n) | {"newcomer-1-deadbeef"}))
    moved = sum(before[s] != joined[s] for s in range(SHARDS))
    assert moved <= 1.15 * SHARDS / (n + 1)  # the newcomer's share, and a few shards of reshuffle
    if n > 1:
        left = owners(assignment(members(n) - {sorted(members(n))[0]}))
        moved = sum(before[s] != left[s] for s in range(SHARDS))
        assert moved <= 1.15 * SHARDS / n  # the leaver's share


def coordinator(url: str, member: str, heart=True):
    c = coordination.get_coordinator(tooz_url(url), member.encode())
    c.start(start_heart=heart)
    return c


@pytest.fixture
def group():
    return f"test-producers-{uuid.uuid4().hex[:8]}"


def test_members_share_the_shards_and_re_split_when_one_leaves_or_stops_heartbeating(group):
    url = f"{settings.COORDINATION_URL}?membership_timeout=1"
    a, b, c = (coordinator(url, name, heart=name != "c") for name in ("a", "b", "c"))
    try:
        pa, pb, pc = Partitioner(a, "a", group), Partitioner(b, "b", group), Partitioner(c, "c", group)
        for p in (pa, pb, pc):
            p.join()
        c.heartbeat()
        shares = [pa.my_shards(), pb.my_shards(), pc.my_shards()]
        assert sorted(s for share in shares for s in share) == list(range(SHARDS))
        assert all(len(share) in (1365, 1366) for share in shares)

        pb.leave()
        # c stopped heartbeating: once its membership times out, a holds everything.
        wait_until(lambda: len(pa.my_shards()) == SHARDS, timeout=15, message="a to own every shard")
        assert pa.members() == {"a"}
    finally:
        for x in (a, b, c):
            x.stop()


@needs_redis_server
def test_a_member_cut_off_from_coordination_claims_nothing_until_it_is_back(group):
    server = RedisServer().start()
    member = coordinator(f"{server.url}?membership_timeout=2", "solo")
    try:
        p = Partitioner(member, "solo", group)
        p.join()
        assert len(p.my_shards()) == SHARDS
        server.stop()
        assert p.my_shards() == frozenset()
        server.start()
        wait_until(lambda: len(p.my_shards()) == SHARDS, timeout=30, message="the member to claim its shards again")
    finally:
        member.stop()
        server.close()
