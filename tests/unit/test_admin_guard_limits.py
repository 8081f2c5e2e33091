"""The browse guard and the parking queues' delivery limit agree."""

from hubbub.admin.guard import delivery_limit_problem
from hubbub.topology.layout import PARKING_DELIVERY_LIMIT


def test_hubbubs_own_parking_limit_is_safe_to_browse_on_every_version():
    args = {"x-queue-type": "quorum", "x-delivery-limit": PARKING_DELIVERY_LIMIT}
    for version in ("3.10.8", "3.13.7", "4.0.5", "4.2.0"):
        assert (
            delivery_limit_problem("h.s.dlq", version=version, arguments=args, policy=None) is None
        )


def test_a_small_limit_or_minus_one_on_3x_is_refused():
    for limit, version in ((20, "4.0.5"), (3, "3.10.8"), (-1, "3.10.8")):
        problem = delivery_limit_problem(
            "h.s.dlq", version=version, arguments={"x-delivery-limit": limit}, policy=None
        )
        assert problem is not None and "2147483647" in problem


def test_minus_one_is_unlimited_on_4x():
    assert (
        delivery_limit_problem(
            "h.s.dlq", version="4.1.0", arguments={"x-delivery-limit": -1}, policy=None
        )
        is None
    )
