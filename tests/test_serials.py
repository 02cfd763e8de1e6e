import uuid

import pytest

from zones.models import shard_for
from zones.serials import is_newer, next_serial, reached


@pytest.mark.parametrize(
    "current,now,expected",
    [
        (0, 1_700_000_000, 1_700_000_000),  # a new zone starts at unix time
        (1_700_000_000, 1_700_000_000, 1_700_000_001),  # two changes in one second
        (1_700_000_005, 1_700_000_000, 1_700_000_006),  # ahead of the clock: never back
        (1_700_000_000, 1_800_000_000, 1_800_000_000),
        (2021010101, 1_700_000_000, 2021010102),  # date-style serial above unix time: +1
        (4294967295, 1_700_000_000, 1_700_000_000),  # past the wrap, unix time is newer (RFC 1982)
        (4294967295, 2_200_000_000, 0),  # the clock is not newer: +1 wraps instead of overflowing 32 bits
    ],
)
def test_next_serial(current, now, expected):
    assert next_serial(current, now) == expected


def test_next_serial_is_always_newer():
    for current in (0, 1, 2**31 - 1, 2**31, 2**32 - 1, 1_700_000_000):
        assert is_newer(next_serial(current, 1_700_000_000), current)


@pytest.mark.parametrize(
    "observed,wanted,expected",
    [(None, 1, False), (5, 5, True), (6, 5, True), (4, 5, False), (1, 4294967295, True), (4294967295, 1, False)],
)
def test_reached(observed, wanted, expected):
    assert reached(observed, wanted) is expected


@pytest.mark.parametrize(
    "zone_id,shard",
    [
        ("00000000-0000-0000-0000-000000000000", 0),
        ("fff00000-0000-0000-0000-000000000000", 4095),
        ("abc12345-0000-0000-0000-000000000000", 0xABC),
        ("0a1ffff0-0000-0000-0000-000000000000", 0x0A1),
    ],
)
def test_shard_is_first_three_hex_digits(zone_id, shard):
    assert shard_for(uuid.UUID(zone_id)) == shard


def test_shards_cover_the_range():
    shards = {shard_for(uuid.uuid4()) for _ in range(20000)}
    assert min(shards) >= 0 and max(shards) <= 4095 and len(shards) > 3900
