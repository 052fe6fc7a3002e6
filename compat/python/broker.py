"""A runnel broker process for one test module: free port, own data dir, always stopped.

The binary comes from the environment variable RUNNEL_BIN (scripts/test-all.sh sets
it to target/debug/runnel). A missing binary is a test failure, never a skip.

For debugging the client drivers before runnel can serve them, COMPAT_TANSU_BIN may
name a Tansu binary (a peer broker, in-memory): the same fixture then starts Tansu
instead. That is a developer aid only; the suite run by scripts/test-all.sh always
uses runnel.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

READY_TIMEOUT_S = 20.0
STOP_GRACE_S = 10.0
START_ATTEMPTS = 3


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (the broker may still lose a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def log_tail(path: Path, lines: int = 60) -> str:
    """The last `lines` lines of a process's log file, for failure messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        return f"(no log: {error})"
    return "\n".join(text.splitlines()[-lines:])


def stop_process(process: subprocess.Popen | None, grace_s: float = STOP_GRACE_S) -> int | None:
    """SIGTERM, then SIGKILL once `grace_s` have passed; the exit code (None
    when there was no process)."""
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@dataclass
class Broker:
    """A running broker; `bootstrap` is what clients connect to."""

    port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen
    kind: str = "runnel"
    overrides: dict = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 60) -> str:
        return log_tail(self.log_path, lines)

    def assert_alive(self) -> None:
        code = self.process.poll()
        assert code is None, f"{self.kind} exited with {code}; log tail:\n{self.log_tail()}"

    def stop(self) -> None:
        stop_process(self.process)


def _command(port: int, data_dir: Path, overrides: dict) -> tuple[str, list[str]]:
    tansu = os.environ.get("COMPAT_TANSU_BIN")
    if tansu:
        url = f"tcp://127.0.0.1:{port}"
        return "tansu", [tansu, "--listener-url", url, "--advertised-listener-url", url]
    runnel = os.environ.get("RUNNEL_BIN")
    assert runnel, "RUNNEL_BIN is not set: build with `cargo build -p runnel-cli` and export its path"
    assert os.access(runnel, os.X_OK), f"RUNNEL_BIN={runnel} is not an executable file"
    command = [
        runnel,
        "server",
        "--data-dir",
        str(data_dir),
        "--listeners",
        f"PLAINTEXT://127.0.0.1:{port}",
    ]
    for key, value in overrides.items():
        command += ["--override", f"{key}={value}"]
    return "runnel", command


def start_broker(overrides: dict | None = None) -> Broker:
    """Start a broker and wait until its port accepts connections.

    Retries on a fresh port when the process dies early (another process may have
    taken the port between our probe and the broker's bind).
    """
    overrides = dict(overrides or {})
    failures = []
    for _ in range(START_ATTEMPTS):
        port = free_port()
        data_dir = Path(tempfile.mkdtemp(prefix="runnel-compat-"))
        log_path = data_dir.parent / f"{data_dir.name}.log"
        kind, command = _command(port, data_dir / "data", overrides)
        (data_dir / "data").mkdir()
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        broker = Broker(port, data_dir, log_path, process, kind, overrides)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and process.poll() is None:
            if port_accepts(port):
                return broker
            time.sleep(0.1)
        failures.append(
            f"port {port}: exit={process.poll()} log tail:\n{broker.log_tail()}"
        )
        broker.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    raise AssertionError(f"{kind} did not become ready:\n" + "\n".join(failures))


def stop_broker(broker: Broker) -> None:
    broker.stop()
    shutil.rmtree(broker.data_dir, ignore_errors=True)
    try:
        broker.log_path.unlink()
    except OSError:
        pass


def restart_broker(broker: Broker, *, kill: bool = False) -> None:
    """Stop the broker and start it again on the same port, data dir and settings.

    SIGTERM (a clean shutdown) by default; `kill=True` sends SIGKILL, as in a crash.
    The new process replaces `broker.process`, so the fixture still stops it; its output
    is appended to the same log after a `=== restart` line.
    """
    assert broker.kind == "runnel", "only runnel keeps data across restarts"
    if broker.process.poll() is None:
        if kill:
            broker.process.kill()
            broker.process.wait()
        else:
            broker.stop()
    _, command = _command(broker.port, broker.data_dir / "data", broker.overrides)
    failures = []
    for _ in range(START_ATTEMPTS):
        with open(broker.log_path, "ab") as log:
            log.write(f"\n=== restart (kill={kill}) at {time.time():.3f}\n".encode())
            log.flush()
            broker.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and broker.process.poll() is None:
            if port_accepts(broker.port):
                return
            time.sleep(0.1)
        failures.append(f"exit={broker.process.poll()}")
        broker.stop()
        time.sleep(0.5)
    raise AssertionError(
        f"runnel did not restart on port {broker.port}: {failures}\n{broker.log_tail()}"
    )
