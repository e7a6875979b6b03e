"""The quick start's main job: every example runs as `python examples/<name>.py` in a fresh home."""
from __future__ import annotations

import sqlite3

from tests.sdk.conftest import REPO, run_script


def test_all_examples_run_and_record_their_runs(tmp_path):
    result = run_script(f"import runpy; runpy.run_path({str(REPO / 'examples' / 'run_all.py')!r}, run_name='__main__')",
                        home=tmp_path, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All examples ran." in result.stdout
    db = sqlite3.connect(tmp_path / "runway.sqlite3")
    flows = dict(db.execute("select f.name, count(*) from runs_flowrun r join runs_flow f on f.id = r.flow_id group by f.name"))
    assert flows == {"github-stars": 1, "concurrent-etl": 2, "crawl": 1, "report": 1, "resilient": 1}
    states = {row[0] for row in db.execute("select state_type from runs_flowrun")}
    assert states == {"COMPLETED"}
    cached = db.execute("select count(*) from runs_taskrun where state_name = 'Cached'").fetchone()[0]
    assert cached == 1
