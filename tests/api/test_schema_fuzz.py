"""Schemathesis against the live server: generated requests never get a 5xx, and answers match the schema.

Run as its command line (the pytest plugin does not follow pytest 9). Checked:
no server error, documented status codes, content types, headers and response
bodies. Not checked: whether schema-valid filter values are accepted and
schema-violating ones refused, since filters are deliberately lenient (any case,
comma-separated lists).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance," \
         "response_schema_conformance,unsupported_method,ignored_auth"  # fmt: skip


def test_generated_requests_get_no_server_error_and_conform_to_the_schema(live_server, make_token):
    command = [
        str(Path(sys.executable).parent / "schemathesis"), "run", f"{live_server}/api/schema/",
        "--header", f"Authorization: Bearer {make_token()}", "--checks", CHECKS,
        "--max-examples", "10", "--seed", "7", "--request-timeout", "30", "--no-color",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "passed" in done.stdout
