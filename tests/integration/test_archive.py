"""The hub's archive on the real broker: what it keeps, retention, replay, resume, backfill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner, Result
from core_support import depth, hubbub, take_all, wait_until

from hubbub import envelope
from hubbub.admin.archive import OFFSET, REPLAY, Archive, ArchiveError, Window
from hubbub.cli.main import cli
from hubbub.producers import Publisher
from hubbub.testing.broker import delete_hub
from hubbub.topology import loader
from hubbub.topology.model import Topology

pytestmark = pytest.mark.integration


def spec(hub: str, **more: Any) -> dict[str, Any]:
    subscribers = {
        "a": {"handler": "hubbub.actions:log", "topics": ["order.#"]},
        "b": {"handler": "hubbub.actions:log", "topics": ["order.#"]},
    }
    return {"hub": hub, "archive": {"retention": "1d"}, "subscribers": subscribers, **more}


def ids_in(url: str, queue: str) -> list[str]:
    return [props.message_id for _m, props, _b in take_all(url, queue)]


def test_the_archive_keeps_each_event_once_with_its_id_topics_time_headers_and_data(
    declare, hub_name, broker_url
):
    topology = declare(spec(hub_name))
    with Publisher(hub_name, url=broker_url) as publisher:
        plain = publisher.publish("order.paid", {"n": 1}, headers={"tenant": "t1"})
        several = publisher.publish(["order.shipped", "crm.lead"], {"n": 2})
        nobody = publisher.publish("audit.login", {"n": 3})  # no subscriber: archived all the same
        delayed = publisher.publish("order.reminder", {"n": 4}, delay=1)
    archive = Archive(topology, url=broker_url)
    found = wait_until(
        lambda: (e := archive.events()) and len(e) == 4 and e,
        15,
        "the delayed event is archived when due",
    )
    by_id = {e.id: e for e in found}
    assert [e.id for e in found] == [plain, several, nobody, delayed]  # archive order
    assert by_id[plain].topics == ("order.paid",)
    assert by_id[plain].headers == {"tenant": "t1"} and by_id[plain].data == {"n": 1}
    # One copy of an event of two topics, both topics kept (3.10 streams drop list headers).
    assert by_id[several].topics == ("order.shipped", "crm.lead")
    assert by_id[delayed].topic == "order.reminder"
    assert by_id[delayed].time is not None and by_id[plain].time is not None
    assert by_id[delayed].time >= by_id[plain].time
    assert [e.offset for e in found] == sorted(e.offset for e in found)


def test_a_window_picks_by_time_pattern_and_id(declare, hub_name, broker_url):
    topology = declare(spec(hub_name))
    with Publisher(hub_name, url=broker_url) as publisher:
        early = [publisher.publish("order.paid", {"n": n}) for n in range(3)]
        time.sleep(1.1)  # an event's time is a whole second (its AMQP timestamp)
        middle = datetime.now(timezone.utc).replace(microsecond=0)
        late = [publisher.publish(t, {"n": 9}) for t in ("order.paid", "order.refunded")]
    archive = Archive(topology, url=broker_url)
    assert [e.id for e in archive.events(Window(until=middle))] == early
    assert [e.id for e in archive.events(Window(since=middle, topics=("*.refunded",)))] == late[1:]
    stats = archive.stats(Window(since=middle))
    assert stats.events == 2 and stats.per_topic == Counter({"order.paid": 1, "order.refunded": 1})
    assert stats.first is not None and stats.first.id == early[0]
    assert stats.last is not None and stats.last.id == late[-1]
    # The command line says the same (in process: no interpreter start).
    shown = CliRunner().invoke(cli, ["archive", "show", "--hub", hub_name, "--json"])
    assert shown.exit_code == 0, shown.output
    assert [e["id"] for e in json.loads(shown.stdout)] == [*early, *late]
    counted = CliRunner().invoke(cli, ["archive", "stats", "--hub", hub_name, "--topic", "*.paid"])
    assert counted.exit_code == 0, counted.output
    assert "(topics *.paid): 4 event(s)" in counted.stdout
    assert counted.stdout.endswith("TOPIC       EVENTS\norder.paid  4\n")


def test_retention_by_size_drops_the_oldest_segments(declare, hub_name, broker_url):
    # Small segments so the bound applies after a few kB (it applies a segment at a time).
    topology = declare(spec(hub_name, archive={"max_size": 20_000, "segment_size": 4_000}))
    body = {"pad": "x" * 400}
    with Publisher(hub_name, url=broker_url) as publisher:
        ids = [publisher.publish("order.paid", {**body, "n": n}) for n in range(200)]
    archive = Archive(topology, url=broker_url)
    kept = wait_until(
        lambda: (e := archive.events()) and e[0].id != ids[0] and e,
        20,
        "the oldest segments are dropped",
    )
    kept_ids = [e.id for e in kept]
    assert kept_ids == ids[-len(kept_ids) :]  # the newest, in order, none missing
    assert 20 <= len(kept_ids) < 120  # about 20 kB of ~450-byte events, a segment's slack


def test_retention_by_age_drops_events_older_than_it(declare, hub_name, broker_url):
    topology = declare(spec(hub_name, archive={"retention": "2s", "segment_size": 2_000}))
    with Publisher(hub_name, url=broker_url) as publisher:
        old = [publisher.publish("order.paid", {"pad": "x" * 300}) for _ in range(20)]
        time.sleep(3)
        # Age is checked when a segment is rolled over: new writes roll several.
        new = [publisher.publish("order.paid", {"pad": "y" * 300}) for _ in range(20)]
    archive = Archive(topology, url=broker_url)
    kept = [e.id for e in archive.events()]
    assert kept[-len(new) :] == new
    # Whole segments go: old events sharing the segment of the first new ones stay
    # until it ages too (a 2,000-byte segment holds about 5 of these events).
    kept_old = kept[: -len(new)]
    assert kept_old == old[len(old) - len(kept_old) :], "not the newest of the old events"
    assert len(kept_old) <= 5, f"{len(kept_old)} of {len(old)} expired events still kept"


def test_replay_copies_a_window_to_one_subscriber_only_in_order_marked(
    declare, hub_name, broker_url
):
    topology = declare(spec(hub_name))
    names = topology.names
    with Publisher(hub_name, url=broker_url) as publisher:
        paid = [publisher.publish("order.paid", {"n": n}) for n in range(5)]
        publisher.publish("order.refunded", {"n": 99})
    take_all(broker_url, names.queue("a"))
    take_all(broker_url, names.queue("b"))
    result = hubbub(
        "archive", "replay", "--hub", hub_name, "--to", "a", "--since", "1h",
        "--topic", "order.paid", url=broker_url, HUBBUB_LOG_LEVEL="INFO",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "replayed 5 event(s) to a" in result.stdout
    assert "connection closed" not in result.stderr  # at INFO: its own close is no news
    copies = take_all(broker_url, names.queue("a"))
    assert [props.message_id for _m, props, _b in copies] == paid
    offsets = [props.headers[OFFSET] for _m, props, _b in copies]
    assert offsets == sorted(offsets)
    replay_id = copies[0][1].headers[REPLAY]
    assert all(props.headers[REPLAY] == replay_id for _m, props, _b in copies)
    assert all("BCC" not in props.headers for _m, props, _b in copies)
    assert [orjson.loads(b)["n"] for _m, _p, b in copies] == list(range(5))
    assert depth(broker_url, names.queue("b")) == 0  # never fanned out to the others
    assert Archive(topology, url=broker_url).unfinished() == []  # progress queue gone


def test_a_dry_run_copies_nothing_and_the_rate_limit_spaces_the_copies(
    declare, hub_name, broker_url
):
    topology = declare(spec(hub_name))
    with Publisher(hub_name, url=broker_url) as publisher:
        for n in range(30):
            publisher.publish("order.paid", {"n": n})
    take_all(broker_url, topology.names.queue("a"))
    archive = Archive(topology, url=broker_url)
    window = Window(since=datetime.now(timezone.utc) - timedelta(hours=1))
    dry = archive.replay("a", window, dry_run=True)
    assert dry.matched == 30 and depth(broker_url, topology.names.queue("a")) == 0
    report = archive.replay("a", window, rate=20)
    assert report.copied == 30
    # 30 copies 1/20 s apart: at least 29 intervals (1.45 s), well under unpaced speed.
    assert report.seconds >= 1.4, report.seconds
    assert report.copied / report.seconds <= 22


def test_a_replay_killed_mid_way_resumes_without_copying_anything_twice(
    declare, hub_name, broker_url
):
    topology = declare(spec(hub_name))
    queue = topology.names.queue("a")
    with Publisher(hub_name, url=broker_url) as publisher:
        published = [publisher.publish("order.paid", {"n": n}) for n in range(300)]
    take_all(broker_url, queue)
    process = subprocess.Popen(
        [sys.executable, "-m", "hubbub.cli.main", "archive", "replay", "--hub", hub_name,
         "--to", "a", "--since", "1h", "--rate", "100/s"],
        env={**os.environ, "HUBBUB_URL": broker_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: depth(broker_url, queue) >= 60, 30, "60 copies made")
    finally:
        process.send_signal(signal.SIGKILL)
        out, _err = process.communicate()
    assert "--resume" in out
    copied_before = depth(broker_url, queue)
    assert 60 <= copied_before < 300
    [(plan, last)] = Archive(topology, url=broker_url).unfinished()
    assert plan.to == "a" and last is not None
    listed = hubbub("archive", "replays", "--hub", hub_name, url=broker_url)
    assert plan.id in listed.stdout, listed.stdout + listed.stderr
    resumed = hubbub("archive", "replay", "--hub", hub_name, "--resume", plan.id, url=broker_url)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed after offset {last}" in resumed.stdout
    got = ids_in(broker_url, queue)
    assert Counter(got).most_common(1)[0][1] == 1, "an event was copied twice"
    assert got == published  # none missed, in order
    assert Archive(topology, url=broker_url).unfinished() == []


def test_bad_input_gives_one_clear_line(declare, hub_name, broker_url):
    declare(spec(hub_name))
    plain = declare({"hub": hub_name + "-plain", "subscribers": spec(hub_name)["subscribers"]})

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, ["archive", *args])  # in process: 6 starts saved

    empty = run("replay", "--hub", hub_name, "--to", "a", "--since", "1h")
    assert empty.exit_code == 3 and "nothing to replay" in empty.stdout
    unknown = run("replay", "--hub", hub_name, "--to", "nobody", "--since", "1h")
    no_archive = run("show", "--hub", plain.hub)
    no_window = run("replay", "--hub", hub_name, "--to", "a")
    no_resume = run("replay", "--hub", hub_name, "--resume", "abcdefabcdef")
    bad_since = run("show", "--hub", hub_name, "--since", "yesterday-ish")
    for result, words in (
        (unknown, "unknown subscriber 'nobody'"),
        (no_archive, "keeps no archive"),
        (no_window, "say which events"),
        (no_resume, "no unfinished replay 'abcdefabcdef'"),
        (bad_since, "--since"),
    ):
        assert result.exit_code == 1, (result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], lines


def test_backfill_gives_subscribers_added_while_events_flow_each_event_once(
    tmp_path: Path, hub_name, broker_url
):
    """Two new subscribers: ``late``, and ``later`` whose live events first wait 5 s in
    its wait queue (``delay: 5s``, longer than the seam settles), where the seam looks too."""
    first = spec(hub_name)
    new = {"handler": "hubbub.actions:log", "topics": ["order.#"], "backfill": "1h"}
    second = {
        **first,
        "subscribers": {**first["subscribers"], "late": new, "later": {**new, "delay": "5s"}},
    }
    file = tmp_path / "topology.yaml"
    topology: Topology = loader.from_mapping(second)
    file.write_text(yaml.safe_dump(first))
    assert hubbub("topology", "apply", "--file", str(file), url=broker_url).returncode == 0
    published: list[str] = []
    stop = threading.Event()

    def flow() -> None:
        with Publisher(hub_name, url=broker_url) as publisher:
            n = 0
            while not stop.is_set():
                published.append(publisher.publish("order.paid", {"n": n}))
                n += 1
                time.sleep(0.004)

    flowing = threading.Thread(target=flow)
    flowing.start()
    got: dict[str, list[str]] = {}
    try:
        wait_until(lambda: len(published) >= 300, 30, "300 events published before the apply")
        file.write_text(yaml.safe_dump(second))
        applied = hubbub("topology", "apply", "--file", str(file), url=broker_url, timeout=120)
        assert applied.returncode == 0, applied.stderr
        assert "backfilled late" in applied.stdout and "backfilled later" in applied.stdout
        time.sleep(1)  # events keep flowing after the backfill too
    finally:
        stop.set()
        flowing.join()
        try:
            for name in ("late", "later"):
                queue = topology.names.queue(name)
                wait_until(
                    lambda q=queue: depth(broker_url, q) >= len(published),
                    30,
                    f"every event in {name}'s queue",
                )
                got[name] = ids_in(broker_url, queue)
        finally:
            delete_hub(broker_url, topology)
    for name, ids in got.items():
        twice = [i for i, n in Counter(ids).items() if n > 1]
        assert not twice, f"{len(twice)} events reached {name} twice"
        assert set(ids) == set(published), f"{len(set(published) - set(ids))} missed by {name}"


def test_a_publisher_headers_and_the_topics_header_read_back_as_a_string(
    declare, hub_name, broker_url
):
    """The event's topics travel as one string: a list-valued header is lost in a 3.10 stream."""
    declare(spec(hub_name))
    with Publisher(hub_name, url=broker_url) as publisher:
        publisher.publish(["order.paid", "crm.lead"], {"n": 1})
    [(_m, props, _b)] = take_all(broker_url, f"{hub_name}.a")
    assert props.headers[envelope.TOPICS] == "order.paid crm.lead"


def test_the_archive_api_refuses_a_hub_without_one(declare, hub_name, broker_url):
    topology = declare({"hub": hub_name, "subscribers": spec(hub_name)["subscribers"]})
    with pytest.raises(ArchiveError, match="keeps no archive"):
        Archive(topology, url=broker_url).events()


def test_a_window_in_the_future_replays_nothing_at_once(declare, hub_name, broker_url):
    topology = declare(spec(hub_name))
    started = time.monotonic()
    report = Archive(topology, url=broker_url).replay(
        "a", Window(since=datetime.now(timezone.utc) + timedelta(hours=1))
    )
    assert report.copied == 0 and report.matched == 0
    assert time.monotonic() - started < 10  # not MARK_TIMEOUT waiting for a marker it skipped
