"""Helpers of the publishing fault tests: the command line, and reading a queue's ids."""

from __future__ import annotations

import os
import subprocess
import sys

import pika


def cli(*args: str, url: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``hubbub ARGS`` in a fresh process against ``url``."""
    env = {**os.environ, "HUBBUB_URL": url, "HUBBUB_LOG_LEVEL": "ERROR"}
    return subprocess.run(
        [sys.executable, "-m", "hubbub.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def consume_ids(url: str, queue: str) -> list[str]:
    """The message ids of every message in ``queue`` (removed), in queue order."""
    ids: list[str] = []
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=2000)
        for method, props, _ in channel.consume(queue, auto_ack=True, inactivity_timeout=1):
            if method is None:
                break
            ids.append(props.message_id)
        channel.cancel()
    finally:
        connection.close()
    return ids
