"""The suite's figures as Markdown tables (printed, and pasted into bench/README.md)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bench.perfkit import median

if TYPE_CHECKING:
    from bench.scenarios import Sizes

Result = dict[str, Any]


def rate(results: Sequence[Result]) -> float:
    return median([r["rate"] for r in results])


def field(results: Sequence[Result], name: str) -> float:
    return median([r[name] for r in results if name in r])


def cpu_us(results: Sequence[Result], events: int) -> float:
    """Median client CPU (user + system) per message, in microseconds."""
    return median([r["cpu_s"] / events * 1e6 for r in results])


def _n(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.0f}"


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def _verdict(ratio: float, target: float, higher_is_better: bool = True) -> str:
    met = ratio >= target if higher_is_better else ratio <= target
    sign = ">=" if higher_is_better else "<="
    return f"{sign} {target:.2f}: {'met' if met else '**not met**'}"


def throughput_table(
    publish: dict[str, list[Result]] | None,
    consume: dict[str, list[Result]] | None,
    both: dict[str, list[Result]] | None,
    events: int,
) -> list[str]:
    lines = [
        "| measurement | hubbub msg/s | baseline msg/s | ratio | target "
        "| client CPU µs/msg hubbub / baseline |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]

    def row(what: str, ours: list[Result], raw: list[Result], target: float | None) -> None:
        ratio = rate(ours) / rate(raw)
        verdict = _verdict(ratio, target) if target is not None else "(context)"
        cpu = f"{cpu_us(ours, events):.1f} / {cpu_us(raw, events):.1f}"
        lines.append(
            f"| {what} | {_n(rate(ours))} | {_n(rate(raw))} | {ratio:.2f} | {verdict} | {cpu} |"
        )

    if publish:
        raw = publish["raw"]
        row("`publish_many` vs Select publisher, window 1,000", publish["many"], raw, 0.9)
        row(
            "`publish_many` vs the same, sending hubbub's properties too",
            publish["many"],
            publish["raw_rich"],
            None,
        )
        if "async" in publish:
            tasks = publish["async"][0].get("tasks", 0)
            row(
                f"`apublish()` from {tasks:,} tasks vs `publish_many`",
                publish["async"],
                publish["many"],
                0.9,
            )
            row(
                f"`apublish()` from {tasks:,} tasks vs Select publisher, window 1,000",
                publish["async"],
                raw,
                None,
            )
        if "go" in publish:
            row(
                "`publish_many` vs Go (amqp091-go), window 1,000",
                publish["many"],
                publish["go"],
                None,
            )
        for key in publish:
            if key.startswith("threads"):
                t = key.removeprefix("threads")
                row(f"`publish()` from {t} threads vs window 1,000", publish[key], raw, 0.9)
                row(
                    f"`publish()` from {t} threads vs window {t} (same number in flight)",
                    publish[key],
                    publish[f"raw_window{t}"],
                    None,
                )
                row(
                    f"`publish()` from {t} threads vs raw pika from {t} threads, "
                    "each waiting for its confirm",
                    publish[key],
                    publish[f"raw_threads{t}"],
                    None,
                )
    if consume:
        row(
            "consume, trivial handler, ack after it returned vs Select consumer, multiple acks",
            consume["hubbub"],
            consume["raw"],
            0.85,
        )
        if "metrics" in consume:
            row(
                "the same, the consumer keeping Prometheus metrics (`--metrics-port`)",
                consume["metrics"],
                consume["raw"],
                None,
            )
    if both:
        if "go" in both:
            row(
                "publish + consume together vs Go (amqp091-go) PerfTest-style",
                both["hubbub"],
                both["go"],
                0.9,
            )
        row(
            "publish + consume together vs raw pika publish + consume together",
            both["hubbub"],
            both["raw"],
            None if "go" in both else 0.9,
        )
    return lines


def together_note(both: dict[str, list[Result]] | None) -> list[str]:
    if not both:
        return []
    if "go" in both:
        return [
            "",
            "Go (amqp091-go) PerfTest-style: one producer (confirms, up to 1,000 unconfirmed) "
            "and one consumer (its own connection, same prefetch, an ack per delivery as "
            "PerfTest does by default) in one process, bench/go/perftest. The baseline column "
            "of each row is the client that row names.",
        ]
    return [
        "",
        "No Go toolchain here (make bench-deps installs it): publishing and consuming "
        "together is checked against raw pika instead of the issue's Go client.",
    ]


def latency_table(sync: dict[str, list[Result]]) -> list[str]:
    ours, raw = sync["hubbub"], sync["raw"]
    p50, raw_p50 = field(ours, "p50_ms"), field(raw, "p50_ms")
    ratio = p50 / raw_p50
    return [
        "| one synchronous confirmed publish | hubbub `publish()` | raw pika confirm-each "
        "| ratio | target |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| latency p50 (ms) | {_ms(p50)} | {_ms(raw_p50)} | {ratio:.2f} "
        f"| {_verdict(ratio, 1.2, higher_is_better=False)} |",
        f"| latency p99 (ms) | {_ms(field(ours, 'p99_ms'))} | {_ms(field(raw, 'p99_ms'))} | | |",
        f"| msg/s | {_n(rate(ours))} | {_n(rate(raw))} | | |",
    ]


def io_table(
    title: str, results: dict[int, list[Result]], threads_each: int, sleep_ms: float
) -> list[str]:
    lines = [
        f"| {title} | msg/s | ideal (threads x {1000 / sleep_ms:.0f}/s) | % of ideal |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for count, runs in results.items():
        ideal = count * threads_each * 1000 / sleep_ms
        got = rate(runs)
        lines.append(f"| {count} | {_n(got)} | {_n(ideal)} | {got / ideal * 100:.0f}% |")
    return lines


def e2e_table(results: dict[float, list[Result]], top_rate: float) -> list[str]:
    lines = [
        f"| load (of {_n(top_rate)} msg/s) | target msg/s | published msg/s | consumed msg/s "
        "| p50 ms | p99 ms |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for load, runs in results.items():
        lines.append(
            f"| {load * 100:.0f}% | {_n(field(runs, 'target_rate'))} "
            f"| {_n(field(runs, 'published_rate'))} | {_n(rate(runs))} "
            f"| {_ms(field(runs, 'latency_p50_ms'))} | {_ms(field(runs, 'latency_p99_ms'))} |"
        )
    return lines


# -- the asyncio section: hubbub's async API beside FastStream ----------------


def _cpu_per_event(results: Sequence[Result]) -> float:
    """Median client CPU per message in µs, each run by its own event count."""
    return median([r["cpu_s"] / r["events"] * 1e6 for r in results])


def asyncio_table(
    consume: dict[str, list[Result]],
    io: dict[str, list[Result]],
    publish: dict[str, list[Result]],
    sizes: Sizes,
) -> list[str]:
    """hubbub async against FastStream and against hubbub sync, one row per comparison."""
    lines = [
        "| measurement | hubbub msg/s | baseline msg/s | ratio | target "
        "| client CPU µs/msg hubbub / baseline |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]

    def row(what: str, ours: list[Result], base: list[Result] | None, target: float | None) -> None:
        if base is None:
            return
        ratio = rate(ours) / rate(base)
        verdict = _verdict(ratio, target) if target is not None else "(context)"
        cpu = f"{_cpu_per_event(ours):.1f} / {_cpu_per_event(base):.1f}"
        lines.append(
            f"| {what} | {_n(rate(ours))} | {_n(rate(base))} | {ratio:.2f} | {verdict} | {cpu} |"
        )

    n, tasks = sizes.async_concurrency, sizes.async_tasks
    trivial = f"consume, trivial `async def` handler ({n} in flight)"
    awaiting = f"handler awaiting {sizes.sleep_ms:g} ms, `async def`, {n} in flight"
    if consume:
        ours = consume["async"]
        base = consume.get("faststream")
        row(f"{trivial} vs FastStream, prefetch {sizes.prefetch}", ours, base, 5.0)
        row(f"{trivial} vs hubbub, trivial plain handler (1 thread)", ours, consume["sync"], 0.8)
    if io:
        ours = io["async"]
        base = io.get("faststream")
        row(f"{awaiting} vs FastStream, prefetch {sizes.prefetch}", ours, base, None)
        base = io.get("faststream_narrow")
        row(f"{awaiting} vs FastStream, prefetch {n} (as many in flight)", ours, base, None)
        row(f"{awaiting} vs hubbub, {n} handler threads", ours, io.get("threads"), None)
    if publish:
        ours = publish["apublish"]
        what = f"`apublish` from {tasks:,} tasks"
        base = publish.get("faststream")
        row(f"{what} vs FastStream `broker.publish` from {tasks:,} tasks", ours, base, 3.0)
        row(f"{what} vs `publish_many`", ours, publish["many"], 0.9)
    return lines


def awaiting_io_table(io: dict[str, list[Result]], sizes: Sizes) -> list[str]:
    """Each contender's rate against the ideal of ``async_concurrency`` sleeping handlers."""
    n, prefetch = sizes.async_concurrency, sizes.prefetch
    per_handler = 1000 / sizes.sleep_ms
    ideal = n * per_handler
    names = {
        "async": (f"hubbub, `async def` handler, concurrency {n}", n),
        "threads": (f"hubbub, plain handler, {n} handler threads", n),
        "faststream": (f"FastStream, prefetch {prefetch}", prefetch),
        "faststream_narrow": (f"FastStream, prefetch {n}", n),
    }
    lines = [
        f"| handler awaiting {sizes.sleep_ms:g} ms | in flight at most | msg/s "
        f"| % of {_n(ideal)}/s ({n} x {per_handler:.0f}/s) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for key, (what, in_flight) in names.items():
        if key in io:
            got = rate(io[key])
            lines.append(f"| {what} | {in_flight} | {_n(got)} | {got / ideal * 100:.0f}% |")
    return lines


def faststream_note(installed: bool, version: str | None) -> list[str]:
    if not installed:
        return [
            "",
            "FastStream is not installed (pip install -e '.[bench]', or make bench): "
            "its rows are skipped, hubbub's are measured alone.",
        ]
    return [
        "",
        f"FastStream {version} (aio-pika): its logger off (it logs two lines per message "
        "by default), default ack policy (ack after the handler returned), declares nothing "
        "(the suite's hub, queue and binding). Its RabbitMQ subscriber has no `max_workers`: "
        "aio-pika starts a task per delivery, so the prefetch bounds its handlers in flight.",
    ]
