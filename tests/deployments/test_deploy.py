"""Deploying flows: defaults checked against the signature, code copied by content, the CLI's verbs
(`deployment` and `work-queue`) and their errors. Work queues and deployments in the API and admin
are in test_api.py."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from orchestrator.deployments.models import Deployment, WorkQueue
from tests.sdk.conftest import run_script

ROOT = Path(__file__).resolve().parents[2]
FLOW = '''
from sdk import flow, get_run_logger

@flow
def {name}(msg: str, count: int = 1) -> str:
    get_run_logger().info("%s x%d", msg, count)
    return msg * count
'''


def command(noun: str, *args: str) -> str:
    out = io.StringIO()
    call_command(noun, *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def project(tmp_path):
    """A directory holding flows/etl.py with a uniquely named flow, a helper module and a cache to leave out."""
    name = f"pipeline_{uuid.uuid4().hex[:6]}"
    flows = tmp_path / "proj" / "flows"
    (flows / "__pycache__").mkdir(parents=True)
    (flows / "etl.py").write_text(FLOW.format(name=name))
    (flows / "helper.py").write_text("VALUE = 1\n")
    (flows / "__pycache__" / "etl.cpython-311.pyc").write_bytes(b"junk")
    (flows / ".git").mkdir()
    (flows / ".git" / "HEAD").write_text("ref")
    return flows, name


def deploy_cli(flows: Path, name: str, *args: str, storage: Path) -> str:
    return command("deployment", "create", f"{flows / 'etl.py'}:{name}", "--storage", str(storage), *args)


def test_a_deployment_stores_a_copy_of_its_code_that_later_edits_do_not_change(project, tmp_path):
    flows, name = project
    storage = tmp_path / "storage"
    out = deploy_cli(flows, name, "--name", "nightly", "--tag", "ETL", "--param", "msg=Hello", storage=storage)

    deployment = Deployment.objects.get(flow__name=name.replace("_", "-"), name="nightly")
    stored = Path(deployment.code_path)
    assert f"Deployed '{deployment}' (code version {deployment.code_version[:12]}, work queue 'default')" in out
    assert sorted(p.name for p in stored.iterdir()) == ["etl.py", "helper.py"]  # no cache, no .git
    assert stored.parent.parent == storage and stored.name == deployment.code_version
    assert (deployment.entrypoint, deployment.parameters, deployment.tags) == (f"etl.py:{name}", {"msg": "Hello"}, ["ETL"])
    assert deployment.work_queue.name == "default"
    schema = deployment.parameter_schema
    assert schema["required"] == ["msg"] and schema["properties"]["count"] == {"title": "Count", "type": "integer", "default": 1}

    (flows / "etl.py").write_text((flows / "etl.py").read_text().replace("msg * count", "msg.upper()"))
    assert "msg * count" in (stored / "etl.py").read_text()  # what the deployment runs is unchanged

    again = deploy_cli(flows, name, "--name", "nightly", storage=storage)
    redeployed = Deployment.objects.get(pk=deployment.pk)
    assert again.startswith(f"Deployed again '{deployment}'")
    assert redeployed.code_version != deployment.code_version and Path(redeployed.code_path).exists()
    assert stored.exists()  # the earlier copy stays for runs that used it
    same = deploy_cli(flows, name, "--name", "dev", "--param", "count=3", storage=storage)
    dev = Deployment.objects.get(flow__name=name.replace("_", "-"), name="dev")
    assert dev.code_version == redeployed.code_version and dev.parameters == {"count": 3}  # one flow, two deployments
    assert "Deployed" in same


@pytest.mark.parametrize("args, message", [
    (["--param", "count=abc"], "default parameters of flow '{flow}' are invalid:\n - count: Input should be a valid integer"),
    (["--param", "colour=red"], "flow '{flow}' has no parameter(s) 'colour'; it takes: msg, count"),
    (["-q", "nowhere"], "work queue 'nowhere' does not exist; create it with `python manage.py work-queue create nowhere`"),
    (["--params", "[1]"], "--params must be a JSON object"),
    (["--param", "novalue"], "--param 'novalue' must look like KEY=VALUE"),
])  # fmt: skip
def test_bad_deployments_are_refused_naming_what_is_wrong_and_nothing_is_stored(project, tmp_path, args, message):
    flows, name = project
    with pytest.raises(CommandError) as refused:
        deploy_cli(flows, name, "--name", "bad", *args, storage=tmp_path / "storage")
    assert message.format(flow=name.replace("_", "-")) in str(refused.value)
    assert not Deployment.objects.filter(name="bad", flow__name=name.replace("_", "-")).exists()


def test_entrypoints_that_are_not_flows_or_do_not_exist_are_refused(project, tmp_path):
    flows, name = project
    storage = ["--storage", str(tmp_path / "s")]
    with pytest.raises(CommandError, match="no file .*missing.py"):
        command("deployment", "create", f"{flows / 'missing.py'}:{name}", "--name", "x", *storage)
    with pytest.raises(CommandError, match="helper.py:VALUE is not a @flow"):
        command("deployment", "create", f"{flows / 'helper.py'}:VALUE", "--name", "x", *storage)
    with pytest.raises(CommandError, match="must look like 'path/to/file.py:function'"):
        command("deployment", "create", str(flows / "etl.py"), "--name", "x", *storage)


def test_a_flow_deploys_itself_from_a_script_and_from_an_importable_package(tmp_path):
    name = f"selfdeploy_{uuid.uuid4().hex[:6]}"
    package = tmp_path / "src" / "mypkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "jobs.py").write_text(FLOW.format(name=name))
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path / 'src')!r})
        from mypkg.jobs import {name}
        done = {name}.deploy(name="from-package", work_queue_name="default", parameters={{"msg": "hi"}},
                             storage={str(tmp_path / 'storage')!r})
        print(done.name, done.code_path)
    """)
    result = run_script(code)
    assert result.returncode == 0, result.stderr
    deployment = Deployment.objects.get(flow__name=name.replace("_", "-"), name="from-package")
    assert deployment.entrypoint == f"mypkg.jobs:{name}"
    assert (Path(deployment.code_path) / "mypkg" / "jobs.py").exists()  # the package keeps its name

    script = tmp_path / "script.py"
    script.write_text(FLOW.format(name=name + "_s") + textwrap.dedent(f"""
        if __name__ == "__main__":
            print({name}_s.deploy("from-script", storage={str(tmp_path / 'storage')!r}).name)
    """))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT,
                            env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    from_script = Deployment.objects.get(flow__name=(name + "_s").replace("_", "-"), name="from-script")
    assert from_script.entrypoint == f"script.py:{name}_s"


def test_deployment_verbs_list_inspect_pause_resume_delete(project, tmp_path):
    flows, name = project
    deploy_cli(flows, name, "--name", "verbs", "--param", "msg=x", storage=tmp_path / "storage")
    ref = f"{name.replace('_', '-')}/verbs"

    listed = [row for row in json.loads(command("deployment", "ls", "--json")) if row["name"] == ref]
    shown = command("deployment", "inspect", ref)

    assert [(row["work_queue"], row["is_paused"]) for row in listed] == [("default", False)]
    assert f"Name:          {ref}" in shown and 'Parameters:    {"msg": "x"}' in shown
    assert "Flow takes:    msg, count?" in shown
    assert command("deployment", "pause", ref) == f"Paused deployment {ref!r}.\n"
    assert Deployment.objects.get(flow__name=name.replace("_", "-"), name="verbs").is_paused
    command("deployment", "resume", ref)
    assert not Deployment.objects.get(flow__name=name.replace("_", "-"), name="verbs").is_paused
    command("deployment", "delete", ref)
    with pytest.raises(CommandError, match=f"deployment '{ref}' does not exist"):
        command("deployment", "inspect", ref)


def test_work_queue_verbs_and_errors():
    name = f"etl-{uuid.uuid4().hex[:6]}"
    assert command("work-queue", "create", "-t", "ETL", "-l", "3", "-p", "2", name) == (
        f"Created work queue {name!r}. Serve it with `celery -A workers worker -Q {name}`.\n")
    with pytest.raises(CommandError, match=f"work queue {name!r} already exists"):
        command("work-queue", "create", name)
    with pytest.raises(CommandError, match="is not valid: use letters, digits"):
        command("work-queue", "create", "bad name!")

    shown = command("work-queue", "inspect", name)
    assert "Priority:    2" in shown and "Limit:       3" in shown and "Tags:        ETL" in shown
    command("work-queue", "pause", name)
    assert WorkQueue.objects.get(name=name).is_paused
    command("work-queue", "resume", name)
    assert command("work-queue", "set-concurrency-limit", name, "none") == f"Work queue {name!r}: no limit.\n"
    command("work-queue", "set-concurrency-limit", name, "5")
    queue = WorkQueue.objects.get(name=name)
    assert (queue.is_paused, queue.concurrency_limit) == (False, 5)
    listed = [row for row in json.loads(command("work-queue", "ls", "--json")) if row["name"] == name]
    assert [(row["priority"], row["filter_tags"]) for row in listed] == [(2, ["ETL"])]
    command("work-queue", "delete", name)
    with pytest.raises(CommandError, match=f"work queue {name!r} does not exist"):
        command("work-queue", "pause", name)


def test_a_queue_in_use_cannot_be_deleted(project, tmp_path):
    flows, name = project
    queue = f"used-{uuid.uuid4().hex[:6]}"
    command("work-queue", "create", queue)
    deploy_cli(flows, name, "--name", "on-queue", "-q", queue, storage=tmp_path / "storage")
    with pytest.raises(CommandError, match=f"work queue {queue!r} is used by deployment\\(s\\) .*/on-queue"):
        command("work-queue", "delete", queue)


def test_help_at_every_level():
    for args in (["deployment", "--help"], ["deployment", "create", "--help"], ["work-queue", "--help"],
                 ["work-queue", "set-concurrency-limit", "--help"]):  # fmt: skip
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0 and "usage: manage.py" in done.stdout, done.stderr


def test_a_deployment_keeps_its_schedule_and_a_malformed_one_is_refused(project, tmp_path):
    flows, name = project
    with pytest.raises(CommandError, match="its schedule would start runs without the required parameter\\(s\\) 'msg'"):
        deploy_cli(flows, name, "--name", "scheduled", "--cron", "0 9 * * *", storage=tmp_path / "storage")
    out = deploy_cli(flows, name, "--name", "scheduled", "--cron", "0 9 * * *", "--timezone", "Europe/Paris",
                     "--param", "msg=hi", storage=tmp_path / "storage")  # fmt: skip
    ref = f"{name.replace('_', '-')}/scheduled"
    detail = json.loads(command("deployment", "inspect", ref, "--json"))

    assert "Schedule: At 09:00, Europe/Paris; next time " in out
    assert [(s["kind"], s["cron"], s["timezone"]) for s in detail["schedules"]] == [("cron", "0 9 * * *", "Europe/Paris")]
    assert len(detail["schedules"][0]["next"]) == 3
    with pytest.raises(CommandError, match="cron '0 9 \\* \\*' has 4 field\\(s\\)"):
        deploy_cli(flows, name, "--name", "scheduled", "--cron", "0 9 * *", "--param", "msg=hi", storage=tmp_path / "storage")
    kept = Deployment.objects.get(flow__name=name.replace("_", "-"), name="scheduled")
    assert [s.cron for s in kept.schedules.all()] == ["0 9 * * *"]  # the refused deploy changed nothing
    deploy_cli(flows, name, "--name", "scheduled", "--interval", "3600", "--param", "msg=hi", storage=tmp_path / "storage")
    assert [(s.kind, s.interval_seconds) for s in kept.schedules.all()] == [("interval", 3600.0)]
