"""Delays and retries under load: lateness, memory with pending delays, retry throughput.

Prints figures; it is not a test. Against the broker in ``--url`` (default
``HUBBUB_URL`` or the local one) it:

1. parks ``--pending`` delayed events in the ladder (delays of 1 h to 7 d, so
   they stay pending for the whole run) and reports the publish rate, the
   broker's memory and the consumer's RSS before and after;
2. publishes ``--probes`` events with whole-second delays spread over
   1..``--max-delay`` s and reports how late each one reached its handler
   (arrival minus due time: p50, p99, max) while the pending events wait;
3. runs ``--retries`` events through fail -> retry (via the ladder) -> succeed
   and reports events/s, next to plain first-time success for comparison.

The consumer of step 2 is a real ``hubbub consume`` process, so its RSS is
the consumer's alone. ``--private-node`` starts a RabbitMQ node for this run
alone (:class:`tests.support.node.RabbitNode`), so that the broker's memory
figures are not mixed with other clients'. Everything the run declares is
deleted at the end.

    .venv/bin/python -m bench.delays --private-node                    # full size
    .venv/bin/python -m bench.delays --pending 2000 --probes 100 --max-delay 5 --retries 500
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pika
import yaml

from hubbub import Event
from hubbub.connection import mask, resolve_urls
from hubbub.consumers.worker import Worker
from hubbub.producers import OutgoingEvent, Publisher
from hubbub.testing.broker import delete_hub, unique_name
from hubbub.topology import apply, delay, loader
from hubbub.topology.model import Topology
from hubbub.topology.names import HubNames
from hubbub.topology.observe import ManagementAPI
from tests.support.node import RabbitNode
from tests.support.process import free_port

ROOT = Path(__file__).resolve().parents[1]
ARRIVALS_ENV = "BENCH_ARRIVALS"
PROBE = "bench.delays:record_probe"
_write_lock = threading.Lock()


# -- the probe handler (runs inside the `hubbub consume` process) -------------


def record_probe(event: Event) -> None:
    """Append ``<due ms> <arrival ms>`` for one delayed event to $BENCH_ARRIVALS."""
    arrived_ms = time.time() * 1000
    due_ms = event.due.timestamp() * 1000 if event.due else float("nan")
    with _write_lock, open(os.environ[ARRIVALS_ENV], "a", encoding="ascii") as out:
        out.write(f"{due_ms:.0f} {arrived_ms:.0f}\n")


# -- broker and process measurements -----------------------------------------


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass(frozen=True)
class Broker:
    """The broker under test; ``pid`` (its VM, for RSS) is known for a private node only."""

    url: str
    api: ManagementAPI
    pid: int | None = None


@contextmanager
def broker(args: argparse.Namespace) -> Iterator[Broker]:
    """The broker in ``--url``, or with ``--private-node`` one started for this run alone."""
    if not args.private_node:
        url = resolve_urls(args.url)[0]
        yield Broker(url, ManagementAPI(url))
        return
    with RabbitNode("hubbub-bench", management_port=free_port()) as node:
        pid = int(node.pid_file.read_text().strip())
        yield Broker(node.url, ManagementAPI(node.url, management_url=node.management_url), pid)


def broker_memory(target: Broker, hub: str) -> dict[str, float]:
    """Node memory in use, this hub's ladder queues' memory and the VM's RSS, in MiB."""
    node = target.api.get("nodes?columns=name,mem_used")[0]
    queues = target.api.in_vhost("queues?columns=name,memory,messages")
    levels = {HubNames(hub).level(n) for n in range(delay.LEVELS)}
    ladder = sum(q.get("memory") or 0 for q in queues if q["name"] in levels)
    parts = target.api.get(f"nodes/{quote(node['name'], safe='')}/memory")["memory"]
    figures = {
        "node_mem_used": node["mem_used"] / 2**20,
        "ladder_queues": ladder / 2**20,
        # Quorum queues' write-ahead log tables: entries stay until the WAL rolls over.
        "quorum_ets": parts.get("quorum_ets", 0) / 2**20,
    }
    if target.pid is not None:
        figures["broker_rss"] = rss_mb(target.pid)
    return figures


def fresh_broker_memory(target: Broker, hub: str) -> dict[str, float]:
    """Broker memory once the management stats (refreshed every ~5 s) have caught up."""
    time.sleep(6)
    return broker_memory(target, hub)


def ladder_depth(url: str, topology: Topology) -> int:
    names = topology.names
    params = pika.URLParameters(url)
    with closing(pika.BlockingConnection(params)) as conn:
        channel = conn.channel()
        return sum(
            channel.queue_declare(names.level(n), passive=True).method.message_count
            for n in range(delay.LEVELS)
        )


def percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


# -- set-up ------------------------------------------------------------------


def bench_topology(hub: str, retry_backoff: int) -> dict[str, Any]:
    fast_retry = {"attempts": 3, "backoff": retry_backoff, "jitter": False}
    return {
        "hub": hub,
        "subscribers": {
            "probe": {"handler": PROBE, "topics": ["bench.probe"]},
            # Run in-process with their own handlers; the file's must still import.
            "flaky": {"handler": PROBE, "topics": ["bench.retry"], "retry": fast_retry},
            "steady": {"handler": PROBE, "topics": ["bench.plain"]},
        },
    }


@contextmanager
def consumer_process(spec: dict[str, Any], url: str, arrivals: Path) -> Iterator[int]:
    """A real ``hubbub consume -s probe`` process; yields its pid, SIGTERMs it after."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(spec, f)
    env = {**os.environ, ARRIVALS_ENV: str(arrivals), "HUBBUB_LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "hubbub.cli.main", "consume", "--file", f.name]
    process = subprocess.Popen(
        [*command, "--url", url, "-s", "probe", "--prefetch", "500"], cwd=ROOT, env=env
    )
    try:
        wait_consuming(url, f"{spec['hub']}.probe", process)
        yield process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        os.unlink(f.name)


def wait_consuming(
    url: str, queue: str, process: subprocess.Popen[bytes], timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    with closing(pika.BlockingConnection(pika.URLParameters(url))) as conn:
        channel = conn.channel()
        while channel.queue_declare(queue, passive=True).method.consumer_count == 0:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the consumer process is not consuming {queue}")
            time.sleep(0.2)


# -- the three measurements --------------------------------------------------


def park_pending(publisher: Publisher, count: int) -> float:
    """Publish ``count`` events delayed 1 h..7 d; returns events/s (confirmed)."""
    rng = random.Random(1)
    started = time.perf_counter()
    batch = 5000
    for start in range(0, count, batch):
        publisher.publish_many(
            OutgoingEvent("bench.filler", {"n": n}, delay=rng.randint(3600, 7 * 86400))
            for n in range(start, min(count, start + batch))
        )
    return count / (time.perf_counter() - started)


def lateness(
    publisher: Publisher, args: argparse.Namespace, arrivals: Path, pid: int
) -> dict[str, float]:
    """Publish the probes, wait for all of them, return lateness figures (ms) and peak RSS."""
    rng = random.Random(2)
    for n in range(args.probes):
        # One at a time: the due time (set as the message is built) is then
        # within a confirm round trip of the broker enqueueing it, not behind
        # a window of pipelined publishes.
        publisher.publish("bench.probe", {"n": n}, delay=rng.randint(1, args.max_delay))
    deadline = time.monotonic() + args.max_delay + 60
    peak = rss_mb(pid)
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = arrivals.read_text().splitlines() if arrivals.exists() else []
        peak = max(peak, rss_mb(pid))
        if len(lines) >= args.probes:
            break
        time.sleep(1)
    late = sorted(float(b) - float(a) for a, b in (line.split() for line in lines))
    return {
        "arrived": len(late),
        "early": sum(1 for v in late if v < 0),
        "p50": percentile(late, 0.50),
        "p99": percentile(late, 0.99),
        "max": late[-1],
        "mean": statistics.fmean(late),
        "peak_rss": peak,
    }


def throughput(
    topology: Topology, url: str, subscriber: str, topic: str, count: int, concurrency: int
) -> float:
    """Events/s from first publish to the last success for ``subscriber``."""
    done = threading.Event()
    succeeded = [0]
    lock = threading.Lock()

    def handler(event: Event) -> None:
        if subscriber == "flaky" and event.attempt == 1:
            raise RuntimeError("the first attempt fails")
        with lock:
            succeeded[0] += 1
            if succeeded[0] >= count:
                done.set()

    worker = Worker(
        topology,
        {subscriber: handler},
        url=url,
        subscribers=[subscriber],
        concurrency=concurrency,
        prefetch=max(200, 4 * concurrency),
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    worker.consuming.wait(30)
    started = time.perf_counter()
    with Publisher(topology.hub, url=url) as publisher:
        publisher.publish_many(OutgoingEvent(topic, {"n": n}) for n in range(count))
    finished = done.wait(600)
    elapsed = time.perf_counter() - started
    worker.stop()
    thread.join(60)
    if not finished:
        raise RuntimeError(f"only {succeeded[0]} of {count} {subscriber} events succeeded")
    return count / elapsed


# -- main ----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    hub = unique_name("bench-delays")
    spec = bench_topology(hub, args.retry_backoff)
    topology = loader.from_mapping(spec)
    with broker(args) as target:
        apply(topology, [target.url])
        print(
            f"hub {hub} on {'a private node' if target.pid else mask(target.url)}: "
            f"pending={args.pending} probes={args.probes} max-delay={args.max_delay}s "
            f"retries={args.retries} concurrency={args.concurrency}"
        )
        try:
            run(args, target, topology, spec)
        finally:
            delete_hub(target.url, topology)
    return 0


def run(args: argparse.Namespace, target: Broker, topology: Topology, spec: dict[str, Any]) -> None:
    url = target.url
    with tempfile.TemporaryDirectory() as tmp, Publisher(topology.hub, url=url) as publisher:
        arrivals = Path(tmp) / "arrivals.txt"
        with consumer_process(spec, url, arrivals) as pid:
            rss_idle = rss_mb(pid)
            before = fresh_broker_memory(target, topology.hub)
            rate = park_pending(publisher, args.pending)
            pending = ladder_depth(url, topology)
            after = fresh_broker_memory(target, topology.hub)
            rss_pending = rss_mb(pid)
            report_pending(args, rate, pending, before, after, rss_idle, rss_pending)
            if args.probes:
                late = lateness(publisher, args, arrivals, pid)
                report_lateness(args, late, rss_mb(pid))
    plain = throughput(topology, url, "steady", "bench.plain", args.retries, args.concurrency)
    retried = throughput(topology, url, "flaky", "bench.retry", args.retries, args.concurrency)
    print(
        f"\nretry path ({args.retries} events, {args.concurrency} handler threads, "
        f"backoff {args.retry_backoff} s, counted from the first publish to the last success):"
    )
    print(f"  fail -> retry via the ladder -> succeed: {retried:8.0f} events/s")
    print(f"  succeed first time (comparison):         {plain:8.0f} events/s")


def report_pending(
    args: argparse.Namespace,
    rate: float,
    pending: int,
    before: dict[str, float],
    after: dict[str, float],
    rss_idle: float,
    rss_pending: float,
) -> None:
    print(
        f"\npending delayed events: published {args.pending} at {rate:.0f}/s (confirmed); "
        f"{pending} waiting in the ladder"
    )
    print(
        f"  broker node memory:   {before['node_mem_used']:8.1f} MiB -> "
        f"{after['node_mem_used']:8.1f} MiB"
    )
    print(
        f"  of which quorum WAL tables: {before['quorum_ets']:8.1f} MiB -> "
        f"{after['quorum_ets']:8.1f} MiB"
    )
    if "broker_rss" in before:
        print(
            f"  broker VM RSS:        {before['broker_rss']:8.1f} MiB -> "
            f"{after['broker_rss']:8.1f} MiB"
        )
    print(
        f"  ladder queues memory: {before['ladder_queues']:8.1f} MiB -> "
        f"{after['ladder_queues']:8.1f} MiB"
    )
    if args.pending:
        grown = (after["ladder_queues"] - before["ladder_queues"]) * 2**20 / args.pending
        print(f"  ladder queues grew {grown:.0f} bytes per pending event")
    print(f"  consumer RSS:         {rss_idle:8.1f} MiB -> {rss_pending:8.1f} MiB")


def report_lateness(args: argparse.Namespace, late: dict[str, float], rss_end: float) -> None:
    print(
        f"\nlateness of {late['arrived']}/{args.probes} delayed events (1..{args.max_delay} s), "
        f"arrival minus due time:"
    )
    print(
        f"  p50 {late['p50']:.0f} ms   p99 {late['p99']:.0f} ms   max {late['max']:.0f} ms   "
        f"mean {late['mean']:.0f} ms   early: {late['early']}"
    )
    print(f"  consumer RSS peak {late['peak_rss']:.1f} MiB, after {rss_end:.1f} MiB")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="broker URL (default HUBBUB_URL or local)")
    parser.add_argument(
        "--private-node",
        action="store_true",
        help="start a RabbitMQ node of its own (clean memory figures; ignores --url)",
    )
    parser.add_argument("--pending", type=int, default=100_000, help="delayed events parked")
    parser.add_argument("--probes", type=int, default=2000, help="delayed events timed")
    parser.add_argument("--max-delay", type=int, default=60, help="longest probe delay, s")
    parser.add_argument("--retries", type=int, default=5000, help="events through the retry path")
    parser.add_argument("--concurrency", type=int, default=8, help="handler threads")
    parser.add_argument(
        "--retry-backoff", type=int, default=1, help="retry wait, s (0 skips the level queues)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
