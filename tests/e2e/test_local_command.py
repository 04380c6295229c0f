"""`greenapi-migrate local` (`make local`), as a newcomer runs it: it starts its own Prefect server, the emulated
fleet, the import and `serve`; the curl line it prints starts a run; Ctrl-C stops everything (issue 21, item 9)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.settings import PREFECT_API_URL, temporary_settings

from tests.helpers import wait_until
from bench.servers import CLI, clean_env


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
        return True
    except httpx.HTTPError:
        return False


def test_local_runs_the_whole_loop_and_stops_on_ctrl_c(tmp_path):
    out = tmp_path / "local.out"
    with out.open("w") as sink:
        # Started with SIGINT ignored, as a background job is: Ctrl-C must still stop it.
        process = subprocess.Popen([CLI, "local", "--prefect-port", "0", "--receiver-port", "0", "--emulator-port", "0"],
                                   env=clean_env(PREFECT_HOME=str(tmp_path / "home")), cwd=tmp_path, stdout=sink,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        curl = wait_until(lambda: process.poll() is None and re.search(r"^  (curl .*/webhooks/greenapi .*)$", out.read_text(), re.M),
                          timeout=120, message=lambda: f"no curl line (exit {process.poll()}): {out.read_text()[-3000:]}").group(1)
        text = out.read_text()
        ui = re.search(r"open the Prefect UI: (http://127\.0\.0\.1:\d+)/runs", text).group(1)
        receiver, emulator = re.search(r"receiver: (\S+)\s+emulator: (\S+)", text).groups()
        assert "3 created" in text
        # The generated receiver secret is never printed: the curl line reads it from a file of its own.
        secret = Path(re.search(r"\$\(cat (\S+)\)", curl).group(1)).read_text()
        assert len(secret) >= 32 and secret not in text

        sent = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30)
        assert '"number-blocked' in sent.stdout or "number-blocked" in sent.stdout, sent.stdout + sent.stderr

        def completed():
            with temporary_settings(updates={PREFECT_API_URL: f"{ui}/api"}), get_client(sync_client=True) as client:
                runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=["number_blocked-1101000001"])))
            return [r for r in runs if r.state_type is not None and r.state_type.value == "COMPLETED"]

        wait_until(completed, timeout=60, message=lambda: f"no completed run number_blocked-1101000001: {out.read_text()[-3000:]}")
    finally:
        os.kill(process.pid, signal.SIGINT)  # Ctrl-C
        try:
            code = process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    text = out.read_text()
    assert code == 0, text[-3000:]
    for line in ("stopped serve", "removed the fleet's blocks", "stopped the emulator", "stopped the Prefect server"):
        assert line in text
    for url in (f"{ui}/api/health", f"{receiver}/health", f"{emulator}/_emulator/health"):
        assert not _answers(url), f"{url} still answers"
