"""A large dead-letter queue: how long list, show and replay take, and what they hold in memory.

Prints figures; it is not a test. Against the broker in ``--url`` (default
``HUBBUB_URL`` or the local one) it:

1. fills one subscriber's dead-letter queue with ``--events`` failed events
   carrying the consumer's real failure record (five topics, three exception
   types; ten ``rare.needle`` events at the very end) and reports the rate;
2. times the ``hubbub`` CLI, each run a fresh process whose peak RSS is
   reported: ``dlq show --topic user.* --limit 10`` (found at the head of a
   queue never read, so it stops there; run again at the end, after the
   queue was read, it must read to the end to keep the order),
   ``dlq show --topic rare.needle --limit 10`` (found only at the tail: a
   full scan), ``dlq show --exception KeyError --since 1h --limit 0 --json``
   (every match of a filter streamed out), ``dlq list``;
3. reads the queue back and checks every event is still there, in order;
4. with ``--replay``, times ``dlq replay --all`` of the whole queue.

Everything the run declares is deleted at the end.

    .venv/bin/python -m bench.dlq                       # 100,000 events
    .venv/bin/python -m bench.dlq --events 20000 --replay
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from bench import perfkit
from hubbub import envelope
from hubbub.admin.browse import Browser
from hubbub.connection import resolve_urls
from hubbub.consumers import failure
from hubbub.message import Outbound
from hubbub.producers import Publisher
from hubbub.testing.broker import delete_hub, unique_name
from hubbub.topology import apply, loader
from hubbub.topology.model import Topology

TOPICS = ["user.signed_up", "user.deleted", "billing.invoice.paid", "billing.refund", "mail.sent"]
ERRORS = [ValueError("bad input"), KeyError("user_id"), TimeoutError("smtp timed out")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--replay", action="store_true", help="also time replaying them all")
    args = parser.parse_args()
    url = resolve_urls(args.url)[0]
    print(
        f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}, "
        f"{os.cpu_count()} CPUs"
    )
    hub = unique_name("bench-dlq")
    topology = loader.from_mapping(
        {"hub": hub, "subscribers": {"work": {"handler": "x:y", "topics": ["#"]}}}
    )
    apply(topology, [url])
    try:
        ids = fill(url, topology, args.events)
        run_cli(url, hub, "dlq", "show", "work", "--topic", "user.*", "--limit", "10")
        run_cli(url, hub, "dlq", "show", "work", "--topic", "rare.needle", "--limit", "10")
        run_cli(
            url,
            hub,
            "dlq",
            "show",
            "work",
            "--exception",
            "KeyError",
            "--since",
            "1h",
            "--limit",
            "0",
            "--json",
        )
        run_cli(url, hub, "dlq", "list")
        print("  again, now that every event was read once (a full pass keeps the order):")
        run_cli(url, hub, "dlq", "show", "work", "--topic", "user.*", "--limit", "10")
        check_intact(url, topology, ids)
        if args.replay:
            run_cli(url, hub, "dlq", "replay", "work", "--all")
            moved = Browser([url], topology.names.queue("work"))
            with moved:
                print(f"  subscriber queue now holds {moved.depth} events")
    finally:
        delete_hub(url, topology)


def fill(url: str, topology: Topology, count: int) -> list[str]:
    """Dead-letter ``count`` events as the consumer would; returns their ids in order."""
    names = topology.names
    ids: list[str] = []
    now_ms = int(time.time() * 1000)
    errors = [_raised(e) for e in ERRORS]
    started = time.perf_counter()
    headers: dict[str, Any] = {}
    body = b""

    def copies() -> Iterator[Outbound]:
        nonlocal headers, body
        for n in range(count):
            topic = "rare.needle" if n >= count - 10 else TOPICS[n % len(TOPICS)]
            headers = failure.record(
                None,
                errors[n % len(errors)],
                reason="attempts exhausted",
                topic=topic,
                attempt=5,
                subscriber="work",
                queue=names.queue("work"),
                exchange=names.exchange,
                routing_key=topic,
                now_ms=now_ms,
            )
            event_id = envelope.new_id()
            body = envelope.dumps({"n": n, "user_id": n * 7, "email": f"user{n}@example.com"})
            message = envelope.message(topic, body, message_id=event_id, headers=headers)
            ids.append(event_id)
            yield Outbound(names.dead_letter_exchange, "work", message)

    with Publisher(topology.hub, url=url, window=2000) as publisher:
        perfkit.send_confirmed(publisher, copies())
    took = time.perf_counter() - started
    size = len(body) + sum(len(str(k)) + len(str(v)) for k, v in headers.items())
    print(
        f"filled {names.dead_letter_queue('work')} with {count} failed events "
        f"(~{size} bytes each) in {took:.1f} s ({count / took:,.0f}/s)"
    )
    return ids


def run_cli(url: str, hub: str, *args: str) -> None:
    """Run one hubbub command in a fresh process; print its wall time and peak RSS.

    The RSS comes from GNU time (``/usr/bin/time -f %M``): a child forked
    from this process would report this process's own size too.
    """
    command = [
        "/usr/bin/time",
        "-f",
        "%M",
        sys.executable,
        "-m",
        "hubbub.cli.main",
        "--log-level",
        "WARNING",
        *args,
        "--hub",
        hub,
        "--url",
        url,
    ]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    took = time.perf_counter() - started
    rss_kib = int(result.stderr.strip().splitlines()[-1])
    lines = result.stdout.splitlines()
    shown = " ".join(args)
    print(
        f"hubbub {shown}: {took:.2f} s, peak RSS {rss_kib / 1024:.0f} MiB, "
        f"exit {result.returncode}, {len(lines)} output lines; "
        f"last: {lines[-1] if lines else ''}"
    )


def check_intact(url: str, topology: Topology, ids: list[str]) -> None:
    """Read the whole DLQ back: every event still there, in the order it was parked."""
    started = time.perf_counter()
    with Browser([url], topology.names.dead_letter_queue("work")) as browser:
        seen = [m.message.message_id for m in browser.messages()]
    took = time.perf_counter() - started
    verdict = "intact, same order" if seen == ids else f"CHANGED ({len(seen)} of {len(ids)})"
    print(f"read back {len(seen)} events in {took:.1f} s: {verdict}")


def _raised(error: BaseException) -> BaseException:
    try:
        raise error
    except BaseException as exc:
        return exc


if __name__ == "__main__":
    main()
