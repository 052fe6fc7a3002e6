"""Runs compat/js/driver.js (kafkajs); used by the kafkajs tests and as a batch inspector.

kafkajs decodes record-batch headers and exposes them, so `record_batches` also lets
other clients' tests see the producer id, epoch and base sequence the broker stored.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

JS_DIR = Path(__file__).resolve().parent.parent / "js"
TIMEOUT_S = 180


def driver(*args: str) -> list[str]:
    """Run the node driver; assert exit 0 and return its stdout lines."""
    assert (JS_DIR / "node_modules" / "kafkajs").is_dir(), (
        "compat/js/node_modules is missing: run `npm ci` in compat/js (scripts/test-all.sh does)"
    )
    result = subprocess.run(
        ["node", str(JS_DIR / "driver.js"), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        cwd=JS_DIR,
    )
    assert result.returncode == 0, (
        f"driver.js {args[0]} exited {result.returncode}:\n{result.stdout[-2000:]}\n"
        f"{result.stderr[-4000:]}"
    )
    return result.stdout.splitlines()


@dataclass(frozen=True)
class Batch:
    partition: int
    base_offset: int
    producer_id: int
    producer_epoch: int
    base_sequence: int


def parse_batches(lines: list[str]) -> list[Batch]:
    batches = []
    for line in lines:
        if line.startswith("batch "):
            batches.append(Batch(*(int(field) for field in line.split()[1:])))
    return batches


def record_batches(bootstrap: str, topic: str, partitions: int, scratch: Path) -> list[Batch]:
    """The headers of every record batch in the topic, as kafkajs fetches them."""
    return parse_batches(driver("consume", bootstrap, topic, str(partitions), str(scratch)))
