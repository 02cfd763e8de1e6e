import pytest

from workers.consensus import consensus_serial, nameservers_verdict, targets_verdict, threshold_met


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


def test_target_verdicts_keep_server_details_from_the_tenant():
    ok, reason, tenant = targets_verdict("CREATE", 100, {"bind-1": None, "knot-2": "knotc: connection refused"})
    assert not ok
    assert reason == "CREATE succeeded on 1 of 2 targets, 100% needed. knot-2: knotc: connection refused"
    assert tenant == "CREATE succeeded on 1 of 2 servers, 100% needed."
    assert targets_verdict("UPDATE", 50, {"bind-1": None, "knot-2": "down"}) == (True, "", "")
    assert targets_verdict("DELETE", 50, {"bind-1": None, "knot-2": "down"})[0] is False  # deletes need all


def test_nameserver_verdicts_name_the_lagging_nameservers_publicly():
    observed = {"10.0.0.1:53": (7, True, ""), "10.0.0.2:5300": (6, False, "still serves serial 6"),
                "10.0.0.3:53": (None, False, "timed out")}
    ok, reason, tenant = nameservers_verdict("UPDATE", 7, 100, observed, {"10.0.0.2:5300": "ns2.example.net."})
    assert not ok
    assert "10.0.0.2:5300: still serves serial 6" in reason and "10.0.0.3:53: timed out" in reason
    assert tenant == "1 of 3 nameservers serve serial 7, 100% needed. Not yet: ns2.example.net., a nameserver."
    assert nameservers_verdict("UPDATE", 7, 30, observed)[0] is True
