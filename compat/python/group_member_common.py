"""What the Python member processes share: options, the event printer, stdin commands."""

from __future__ import annotations

import queue
import sys
import threading
import time

DEFAULTS = {
    "commit": "batch",
    "protocol": "classic",
    "strategy": "range",
    "session_ms": "10000",
    "heartbeat_ms": "1000",
    "instance": "",
    "partitions": "6",
}


def parse_options(arguments: list[str]) -> dict[str, str]:
    options = dict(DEFAULTS)
    for argument in arguments:
        key, _, value = argument.partition("=")
        options[key] = value
    for required in ("bootstrap", "topic", "group", "name"):
        assert options.get(required), f"missing {required}="
    return options


class Emitter:
    """Prints `<wall-clock ms> <kind> <args>` lines, whole and flushed, from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __call__(self, kind: str, *args) -> None:
        line = " ".join([str(int(time.time() * 1000)), kind, *(str(a) for a in args)])
        with self._lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def partitions(self, kind: str, topic_partitions, *args) -> None:
        numbers = sorted(tp.partition for tp in topic_partitions)
        self(kind, ",".join(map(str, numbers)) or "-", *args)


def commands_from_stdin(commands: queue.Queue) -> None:
    """Feed stdin lines to `commands`; EOF (the test went away) means close."""
    for line in sys.stdin:
        if line.strip():
            commands.put(line.strip())
    commands.put("close")


def explicit_offsets(items: list[str]) -> list[tuple[int, int, str | None]]:
    """`P:O[:META]` items as (partition, offset, metadata or None)."""
    parsed = []
    for item in items:
        fields = item.split(":", 2)
        parsed.append((int(fields[0]), int(fields[1]), fields[2] if len(fields) > 2 else None))
    return parsed
