import pytest

from workers.consensus import consensus_serial, threshold_met


@pytest.mark.parametrize(
    "count,total,threshold,expected",
    [
        (2, 2, 100, True),
        (1, 2, 100, False),
        (1, 2, 50, True),  # a tie at the threshold passes
        (1, 3, 34, False),  # 33.3% < 34%
        (1, 3, 33, True),
        (2, 3, 67, False),  # 66.6% < 67%: no float rounding lets it through
        (2, 3, 66, True),
        (0, 0, 100, False),  # no targets: nothing can be confirmed
        (0, 1, 1, False),
        (3, 4, 75, True),
    ],
)
def test_threshold_met(count, total, threshold, expected):
    assert threshold_met(count, total, threshold) is expected


@pytest.mark.parametrize(
    "serials,threshold,expected",
    [
        ([10, 10], 100, 10),
        ([10, 9], 100, 9),  # the lagging server holds the pool back
        ([10, 9], 50, 10),  # tie at 50%: half the servers have 10
        ([10, None], 100, None),  # a nameserver with no answer reaches nothing
        ([10, None], 50, 10),
        ([None, None], 50, None),
        ([], 100, None),
        ([12, 10, 10], 100, 10),  # a serial above the consensus counts as reaching the lower one
        ([12, 10, 10], 34, 10),  # 1 of 3 is 33.3%: not enough for 12
        ([12, 10, 10], 33, 12),
        ([12, 11, 10], 66, 11),  # 12 and 11 both reach 11
        ([12, 11, 10], 67, 10),
        ([15, 12, None, 9], 50, 12),
        ([15, 12, None, 9], 75, 9),
        ([15, 12, None, 9], 76, None),
        # RFC 1982: 5 is "after" 4294967290 once the serial wrapped
        ([5, 4294967290], 50, 5),
        ([5, 4294967290], 100, 4294967290),
    ],
)
def test_consensus_serial(serials, threshold, expected):
    assert consensus_serial(serials, threshold) == expected
