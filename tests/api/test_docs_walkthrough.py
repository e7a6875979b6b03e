"""docs/api.md's curl walk-through, run as written against the live server."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def walkthrough_block() -> str:
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(), flags=re.S)
    return next(block for block in blocks if "FLOW_RUN=$(call" in block)


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl and jq")
def test_the_curl_walkthrough_in_docs_api_md_runs_as_written(live_server, make_token):
    env = {**os.environ, "TOKEN": make_token(), "API": f"{live_server}/api"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", walkthrough_block()], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    assert "REJECT AwaitingRetry" in lines and "Retrying" in lines
    assert "Pending -> Running -> AwaitingRetry -> Retrying -> Completed" in lines
    assert "loaded 2 rows" in lines
    assert lines[-2] == "a task run cannot go from Completed to Running"
