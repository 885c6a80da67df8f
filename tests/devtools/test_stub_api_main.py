"""The stand-in run as a program (``python -m devtools.stub_api``), as the demo's run command starts it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from devtools.stub_api import StubServer
from tests.conftest import ROOT


def _answers(url: str) -> int:
    body = json.dumps({"messages": [{"role": "user", "content": "echo: here"}]}).encode()
    request = urllib.request.Request(f"{url}/v1/messages", data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def test_it_takes_a_free_port_and_writes_where_it_listens(tmp_path: Path) -> None:
    url_file = tmp_path / "url"
    stand_in = subprocess.Popen(
        [sys.executable, "-m", "devtools.stub_api", "--url-file", str(url_file)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while not url_file.exists() or not url_file.read_text().strip():
            assert stand_in.poll() is None and time.monotonic() < deadline, "the stand-in did not start"
            time.sleep(0.05)
        assert _answers(url_file.read_text().strip()) == 200
    finally:
        stand_in.terminate()
        stand_in.wait(10)


def test_a_taken_port_stops_it_with_a_message_instead_of_using_someone_elses(
    stub_api: StubServer, tmp_path: Path
) -> None:
    taken = stub_api.url.rsplit(":", 1)[1]
    done = subprocess.run(
        [sys.executable, "-m", "devtools.stub_api", "--port", taken, "--url-file", str(tmp_path / "url")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert f"cannot listen on 127.0.0.1:{taken}" in done.stderr and "unset DEMO_API_PORT" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "url").exists()
