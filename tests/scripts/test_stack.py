"""`make stack`: the local DynamoDB server, Kafka broker and the service come up ready, a write is read back and
its event consumed with the command the stack prints, and Ctrl-C stops every process it started."""

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devservers import ROOT, free_port, running

pytestmark = pytest.mark.slow


def children(pid: int) -> set[int]:
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def descendants(pid: int) -> set[int]:
    found = children(pid)
    for child in list(found):
        found |= descendants(child)
    return found


@pytest.fixture
def stack() -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The stack started as `make stack` starts it, and everything it printed up to `ready`."""
    process = subprocess.Popen(
        [sys.executable, "scripts/stack.py", "--port", str(free_port())],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    printed = ""
    assert process.stdout is not None
    for line in process.stdout:
        printed += line
        if line.strip() == "ready":
            break
    try:
        assert process.poll() is None, printed
        yield process, printed
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_stack_serves_publishes_and_stops_on_ctrl_c(stack: tuple[subprocess.Popen[str], str]) -> None:
    process, printed = stack
    url = re.search(r"Feature Store API\s+(\S+)", printed).group(1)  # type: ignore[union-attr]
    consume = re.search(r"Read the events:\s+(.+)", printed).group(1).split()  # type: ignore[union-attr]
    assert httpx.get(f"{url}/ready", timeout=5).status_code == 200

    write = {
        "meta": {"source": "prediction_service"},
        "data": {
            "entity_type": "bright_uid",
            "entity_value": "user-1",
            "feature_list": [{"category": "user_features", "features": {"age": 30}}],
        },
    }
    assert httpx.post(f"{url}/items", json=write, timeout=10).status_code == 200
    read = httpx.get(f"{url}/get/item/user-1/user_features", params={"entity_type": "bright_uid"}, timeout=10)
    assert read.json()["features"]["data"] == {"age": 30}
    event = subprocess.run(
        [*consume, "--count", "1", "--timeout", "30"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert event.returncode == 0, event.stdout + event.stderr
    assert '"entity_id": "user-1"' in event.stdout and '"resource_name": "user_features"' in event.stdout

    assert len(children(process.pid)) == 3, "Dynoxide, Tansu and the service"
    started = descendants(process.pid)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0
    assert process.stdout is not None and process.stdout.read().strip().endswith("stopped")
    deadline = time.monotonic() + 5
    while any(running(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in started if running(pid)], "a process the stack started outlived it"
