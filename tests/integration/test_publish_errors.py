"""What cannot be published fails in one line, before anything of a batch reaches the broker.

Against the real broker: every bad event of a batch (data JSON cannot
carry, headers pika cannot encode, ids over 255 bytes) fails the whole batch
with PublishError and leaves the queue empty; the same through kombu and
through the command line, which also reads big DATA from a file or stdin.
"""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal

import kombu
import orjson
import pytest
from core_support import depth, hubbub, take_all

from hubbub.errors import PublishError
from hubbub.producers import OutgoingEvent, Publisher
from hubbub.producers.kombu import KombuPublisher

pytestmark = pytest.mark.integration

#: One event each that the wire cannot carry, and what the error says of it.
BAD = [
    (OutgoingEvent("job", {"total": float("nan")}), "data['total'] is nan"),
    (OutgoingEvent("job", {"total": float("inf")}), "data['total'] is inf"),
    (OutgoingEvent("job", {"price": Decimal("1.10")}), "data['price'] is of type Decimal"),
    (OutgoingEvent("job", {"raw": b"x"}), "data['raw'] is of type bytes"),
    (OutgoingEvent("job", {"tags": {1}}), "data['tags'] is of type set"),
    (OutgoingEvent("job", {"n": 2**70}), "data['n'] = 1180591620717411303424 is beyond 64 bits"),
    (OutgoingEvent("job", {3: "x"}), "data has the key 3 (int)"),
    (OutgoingEvent("job", {}, headers={"ratio": 1.5}), "header 'ratio' is a float"),
    (OutgoingEvent("job", {}, headers={"k" * 300: 1}), "is 300 bytes long"),
    (OutgoingEvent("job", {}, message_id="i" * 300), "message_id is 300 bytes long"),
]


def spec(hub: str) -> dict:
    return {"hub": hub, "subscribers": {"s": {"handler": "json:dumps", "topics": ["job"]}}}


@pytest.mark.parametrize(("bad", "says"), BAD, ids=[s[:28] for _, s in BAD])
def test_a_batch_with_one_bad_event_sends_nothing_and_names_the_field(
    declare, hub_name, broker_url, bad, says
):
    declare(spec(hub_name))
    good = [OutgoingEvent("job", {"i": i}, message_id=f"ok-{i}") for i in range(600)]
    with Publisher(hub_name, url=broker_url) as publisher:
        with pytest.raises(PublishError) as caught:
            publisher.publish_many([*good, bad])  # the bad one is in the third chunk
        text = str(caught.value)
        assert text.startswith("event 600 of the batch: cannot publish: ") and says in text
        assert "\n" not in text
        assert caught.value.failed[:600] == [e.message_id for e in good]  # nothing confirmed
        assert len(caught.value.failed) == 601
        with pytest.raises(PublishError, match="cannot publish: ") as single:
            publisher.publish(bad.topic, bad.data, headers=bad.headers, message_id=bad.message_id)
        assert len(single.value.failed) == 1
        publisher.publish("job", {"after": True})  # the publisher works on
    assert [orjson.loads(b) for _, _, b in take_all(broker_url, f"{hub_name}.s")] == [
        {"after": True}
    ]


def test_the_kombu_publisher_refuses_the_same_events_before_sending_any(
    declare, hub_name, broker_url
):
    declare(spec(hub_name))
    with kombu.Connection(broker_url, transport_options={"confirm_publish": True}) as connection:
        publisher = KombuPublisher(hub_name, connection)
        for bad, says in BAD:
            with pytest.raises(PublishError, match="cannot publish: ") as caught:
                publisher.publish_many([OutgoingEvent("job", {"i": 1}), bad])
            assert says in str(caught.value)
    assert depth(broker_url, f"{hub_name}.s") == 0


def test_the_cli_refuses_nan_in_one_line(declare, hub_name, broker_url):
    declare(spec(hub_name))
    result = hubbub("publish", "--hub", hub_name, "job", '{"x": [1, NaN]}', url=broker_url)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: cannot publish: data['x'][1] is nan; JSON has no NaN or Infinity: "
        "send null, a string or a number"
    ]
    assert depth(broker_url, f"{hub_name}.s") == 0


def test_a_topic_of_undecodable_bytes_is_one_line_without_traceback(broker_url):
    env = {**os.environ, "HUBBUB_URL": broker_url, "LC_ALL": "C.UTF-8"}
    argv = [sys.executable.encode(), b"-m", b"hubbub.cli.main", b"publish", b"--hub", b"h"]
    result = subprocess.run(
        [*argv, b"user.\xff", b"{}"], capture_output=True, env=env, timeout=30, check=False
    )
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        "error: argument 4 (b'user.\\xff') is not valid UTF-8: pass UTF-8 text "
        "(check the terminal's or the script's encoding)"
    ]


TEN_MB = 10 * 1024 * 1024


def big_data() -> bytes:
    """About 10 MB of JSON: more than one command-line argument may hold (128 KiB)."""
    return orjson.dumps({"blob": "x" * TEN_MB, "n": 1})


def test_the_cli_reads_10_mb_of_data_from_a_file_and_from_stdin(
    declare, hub_name, broker_url, tmp_path
):
    declare(spec(hub_name))
    data = big_data()
    path = tmp_path / "event.json"
    path.write_bytes(data)
    by_file = hubbub("publish", "--hub", hub_name, "job", f"@{path}", "--id", "f", url=broker_url)
    assert by_file.returncode == 0, by_file.stderr
    env = {**os.environ, "HUBBUB_URL": broker_url}
    by_stdin = subprocess.run(
        [
            sys.executable,
            "-m",
            "hubbub.cli.main",
            "publish",
            "--hub",
            hub_name,
            "job",
            "-",
            "--id=s",
        ],
        input=data,
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert by_stdin.returncode == 0, by_stdin.stderr
    stored = {p.message_id: b for _, p, b in take_all(broker_url, f"{hub_name}.s")}
    assert set(stored) == {"f", "s"}
    assert all(len(body) == len(data) and orjson.loads(body)["n"] == 1 for body in stored.values())
    missing = hubbub("publish", "--hub", hub_name, "job", f"@{tmp_path / 'nope.json'}")
    assert missing.returncode == 2 and "cannot read" in missing.stderr
