"""An in-memory hub a test leaves open stops standing in for the broker when the test ends
(the plugin's doing), so later real-broker tests of the session reach their broker."""

from __future__ import annotations

pytest_plugins = ["pytester"]

APP_TESTS = """
from hubbub import Hub
from hubbub.producers.publisher import Publisher
from hubbub.testing import InMemoryHub

app_hub = Hub("events", url="amqp://guest:guest@127.0.0.1:1/%2F")

def test_builds_an_in_memory_hub_and_leaves_it_open():
    memory = InMemoryHub("events")
    assert app_hub.publisher is memory.publisher

def test_uses_the_memory_hub_fixture(memory_hub):
    assert app_hub.publisher is memory_hub.publisher

def test_a_later_test_gets_the_real_publisher_back():
    publisher = app_hub.publisher  # built, not connected
    assert type(publisher) is Publisher
"""


def test_the_plugin_withdraws_in_memory_hubs_after_each_test(pytester):
    pytester.makepyfile(test_app=APP_TESTS)
    result = pytester.runpytest("-p", "no:randomly", "-q")
    result.assert_outcomes(passed=3)
