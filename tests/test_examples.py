"""The example apps do what their docstrings say (in the test environment)."""

from __future__ import annotations

from examples import approval, saga


def test_expense_approval_with_a_callback(make_env):
    env = make_env(approval.app)
    handle = env.client.start_workflow("expense", {"who": "ann", "amount": 420}, id="exp-1")
    env.drain()
    assert handle.describe().custom_status == "awaiting approval"
    env.client.complete_callback(handle.query("link"), {"approved": True, "by": "bob"})
    assert handle.result() == {"paid": True, "receipt": "paid 420 to ann", "approved_by": "bob"}


def test_expense_expires_after_two_weeks(make_env):
    env = make_env(approval.app)
    handle = env.client.start_workflow("expense", {"who": "ann", "amount": 1}, id="exp-2")
    assert handle.result()["reason"] == "nobody approved within two weeks"


def test_saga_compensates_in_reverse(make_env):
    env = make_env(saga.app)
    failing = env.client.start_workflow("trip", {"flight": "LH123", "hotel": "Adlon", "car": ""},
                                        id="trip-1")
    assert failing.result() == {"booked": False, "why": "no car to book",
                                "compensated": ["hotel Adlon cancelled", "flight LH123 cancelled"]}
    ok = env.client.start_workflow("trip", {"flight": "LH1", "hotel": "H", "car": "VW"}, id="t2")
    assert ok.result() == {"booked": True, "items": ["flight LH1", "hotel H", "car VW"]}
