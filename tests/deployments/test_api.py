"""Work queues and deployments over the live API (and a flow deploying itself over HTTP), and in the admin."""
from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

from orchestrator.deployments import services
from orchestrator.deployments.models import Deployment, WorkQueue
from orchestrator.runs.models import FlowRun
from tests.api.test_admin_tokens import admin_browser
from tests.deployments.conftest import may_deploy
from tests.deployments.test_deploy import FLOW
from tests.sdk.conftest import run_script


def test_work_queues_are_created_paused_limited_listed_and_deleted(api):
    name = f"api-q-{uuid.uuid4().hex[:6]}"
    created = api.post("work_queues/", json={"name": name, "tags": ["ETL"], "priority": 3})
    assert created.status_code == 201, created.text
    assert api.post("work_queues/", json={"name": name}).status_code == 400
    assert api.post(f"work_queues/{name}/pause/").json()["is_paused"] is True
    limited = api.post(f"work_queues/{name}/set_concurrency_limit/", json={"concurrency_limit": 2}).json()
    assert (limited["concurrency_limit"], limited["filter_tags"], limited["priority"]) == (2, ["ETL"], 3)
    assert api.post(f"work_queues/{name}/resume/").json()["is_paused"] is False
    listed = [q["name"] for q in api.get("work_queues/", params={"limit": 500}).json()["results"]]
    assert name in listed
    assert api.delete(f"work_queues/{name}/").status_code == 204
    missing = api.get(f"work_queues/{name}/")
    assert missing.status_code == 404 and name in missing.json()["detail"]


def test_bad_work_queues_are_refused_naming_the_problem(api):
    bad_name = api.post("work_queues/", json={"name": "two words"})
    bad_limit = api.post("work_queues/", json={"name": f"q-{uuid.uuid4().hex[:6]}", "concurrency_limit": -1})
    unknown = api.post("work_queues/", json={"name": f"q-{uuid.uuid4().hex[:6]}", "deployments": ["no/such"]})
    assert bad_name.status_code == bad_limit.status_code == unknown.status_code == 400
    assert "is not valid" in bad_name.json()["detail"]
    assert "concurrency_limit" in bad_limit.json()["fields"]
    assert "deployment 'no/such' does not exist" in unknown.json()["detail"]


def test_a_flow_deploys_itself_over_http_and_the_api_reads_pauses_and_deletes_it(live_server, make_token, api, tmp_path):
    name = f"httpdeploy_{uuid.uuid4().hex[:6]}"
    script = tmp_path / "jobs.py"
    script.write_text(FLOW.format(name=name))
    code = textwrap.dedent(f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location("jobs", {str(script)!r})
        jobs = importlib.util.module_from_spec(spec); spec.loader.exec_module(jobs)
        from sdk.deployments import deploy, run_deployment
        deployed = deploy({str(script)!r} + ":{name}", name="over-http", parameters={{"msg": "hi"}})
        run = run_deployment("{name.replace('_', '-')}/over-http", parameters={{"count": 2}}, timeout=0)
        print(run.id, run.state.name)
        print(deployed.id)
    """)
    result = run_script(code, RUNWAY_API_URL=f"{live_server}/api", RUNWAY_API_KEY=may_deploy(make_token()))
    assert result.returncode == 0, result.stderr
    *_, (run_id, state_name), (deployment_id,) = [line.split() for line in result.stdout.strip().splitlines()]
    assert state_name == "Scheduled"
    assert FlowRun.objects.get(pk=run_id).parameters == {"msg": "hi", "count": 2}

    one = api.get(f"deployments/{deployment_id}/").json()
    assert (one["flow_name"], one["name"], one["parameters"], one["work_queue_name"]) == (
        name.replace("_", "-"), "over-http", {"msg": "hi"}, "default")
    assert Path(one["code_path"], "jobs.py").exists()
    assert api.post(f"deployments/{deployment_id}/pause/").json()["is_paused"] is True
    listed = api.get("deployments/", params={"flow__name": name.replace("_", "-")}).json()["results"]
    assert [d["id"] for d in listed] == [deployment_id]
    assert api.delete(f"deployments/{deployment_id}/").status_code == 204
    assert not Deployment.objects.filter(pk=deployment_id).exists()


def test_the_api_runs_a_deployment_with_its_defaults_or_given_parameters_and_refuses_bad_ones(api, stored_code):
    body = {"flow_name": f"apirun-{uuid.uuid4().hex[:6]}", "name": "d", "entrypoint": "f.py:f", "code_path": stored_code,
            "code_version": "0" * 64, "parameters": {"msg": "hi"},
            "parameter_schema": {"properties": {"msg": {}, "n": {}}, "required": ["msg"], "additionalProperties": False}}  # fmt: skip
    deployment_id = api.post("deployments/", json=body).json()["deployment"]["id"]

    quick = api.post(f"deployments/{deployment_id}/runs/")
    custom = api.post(f"deployments/{deployment_id}/runs/", json={"parameters": {"n": 3}, "idempotency_key": "k1"})
    again = api.post(f"deployments/{deployment_id}/runs/", json={"parameters": {"n": 3}, "idempotency_key": "k1"})
    unknown = api.post(f"deployments/{deployment_id}/runs/", json={"parameters": {"nope": 1}})
    bad_parent = api.post(f"deployments/{deployment_id}/runs/", json={"parent_flow_run_id": str(uuid.uuid4())})
    missing = api.post(f"deployments/{uuid.uuid4()}/runs/")
    assert quick.status_code == custom.status_code == again.status_code == 201, quick.text
    assert (quick.json()["parameters"], quick.json()["state"]["name"]) == ({"msg": "hi"}, "Scheduled")
    assert custom.json()["parameters"] == {"msg": "hi", "n": 3} and custom.json()["deployment_id"] == deployment_id
    assert again.json()["id"] == custom.json()["id"]
    assert unknown.status_code == bad_parent.status_code == 400
    assert "unknown parameter(s) 'nope'" in unknown.json()["detail"]
    assert "parent flow run" in bad_parent.json()["detail"] and "does not exist" in bad_parent.json()["detail"]
    assert missing.status_code == 404


def test_a_deployment_posted_with_an_unknown_parameter_or_a_bad_code_version_is_refused(api, stored_code):
    body = {"flow_name": "f", "name": "d", "entrypoint": "f.py:f", "code_path": stored_code, "code_version": "0" * 64,
            "parameters": {"nope": 1}, "parameter_schema": {"properties": {"msg": {}}, "additionalProperties": False}}  # fmt: skip
    unknown = api.post("deployments/", json=body)
    bad_version = api.post("deployments/", json={**body, "parameters": {}, "code_version": "abc"})
    assert unknown.status_code == bad_version.status_code == 400
    assert "unknown parameter(s) 'nope'; the flow takes: msg" in unknown.json()["detail"]
    assert "code_version" in bad_version.json()["fields"]


def test_the_admin_lists_queues_and_deployments_and_pauses_queues(live_server):
    browser = admin_browser(live_server)
    name = f"admin-q-{uuid.uuid4().hex[:6]}"
    queue = WorkQueue.objects.create(name=name)
    paused = browser.post("/admin/deployments/workqueue/", follow_redirects=True, data={
        "action": "pause", "_selected_action": [queue.pk], "csrfmiddlewaretoken": browser.cookies["csrftoken"]})  # fmt: skip
    assert paused.status_code == 200 and "Paused 1 work queue(s)" in paused.text
    assert WorkQueue.objects.get(pk=queue.pk).is_paused
    assert browser.get("/admin/deployments/deployment/").status_code == 200
    assert browser.get("/admin/deployments/deployment/add/").status_code == 403  # made by deploying code


def test_schedules_cross_the_api_and_a_malformed_one_is_a_400(api, stored_code):
    body = {"flow_name": f"sched-{uuid.uuid4().hex[:6]}", "name": "d", "entrypoint": "f.py:f", "code_path": stored_code,
            "code_version": "0" * 64, "schedules": [{"cron": "0 9 * * *", "timezone": "Europe/Paris"}]}  # fmt: skip
    created = api.post("deployments/", json=body)
    bad = api.post("deployments/", json={**body, "schedules": [{"cron": "0 9 * * MON-XYZ"}]})

    assert created.status_code == 201, created.text
    schedule = created.json()["deployment"]["schedules"][0]
    assert (schedule["description"], len(schedule["next"])) == ("At 09:00, Europe/Paris", 3)
    assert bad.status_code == 400 and "cron '0 9 * * MON-XYZ' is not valid" in bad.json()["detail"]


def test_the_admin_runs_a_deployment_now_or_with_parameters_and_pauses_it(live_server):
    browser = admin_browser(live_server)
    body = {"flow_name": f"adminrun-{uuid.uuid4().hex[:6]}", "name": "d", "entrypoint": "f.py:f", "code_path": "/x",
            "code_version": "0" * 64, "parameters": {"msg": "hi"}, "schedules": [{"interval_seconds": 3600}],
            "parameter_schema": {"properties": {"msg": {}, "n": {}}, "required": ["msg"], "additionalProperties": False}}  # fmt: skip
    deployment, _ = services.deployment_create(**body)
    token = browser.cookies["csrftoken"]
    runs = FlowRun.objects.filter(deployment=deployment)
    assert runs.filter(idempotency_key__startswith="scheduled:").count() == 24  # a day of hourly runs ahead

    page = browser.get(f"/admin/deployments/deployment/{deployment.pk}/run/")
    bad = browser.post(f"/admin/deployments/deployment/{deployment.pk}/run/",
                       data={"parameters": '{"nope": 1}', "csrfmiddlewaretoken": token})  # fmt: skip
    good = browser.post(f"/admin/deployments/deployment/{deployment.pk}/run/", follow_redirects=True,
                        data={"parameters": '{"n": 3}', "csrfmiddlewaretoken": token})  # fmt: skip
    assert page.status_code == 200 and "Default parameters" in page.text
    assert bad.status_code == 200 and "unknown parameter(s) &#x27;nope&#x27;" in bad.text
    assert good.status_code == 200 and "Created flow run" in good.text
    assert runs.get(parameters={"msg": "hi", "n": 3}).state_name == "Scheduled"

    acted = browser.post("/admin/deployments/deployment/", follow_redirects=True, data={
        "action": "run_now", "_selected_action": [deployment.pk], "csrfmiddlewaretoken": token})  # fmt: skip
    assert "Created flow run" in acted.text
    assert runs.exclude(idempotency_key__startswith="scheduled:").count() == 2
    browser.post("/admin/deployments/deployment/", follow_redirects=True, data={
        "action": "pause", "_selected_action": [deployment.pk], "csrfmiddlewaretoken": token})  # fmt: skip
    assert Deployment.objects.get(pk=deployment.pk).is_paused
    assert runs.count() == 2  # the upcoming scheduled runs are gone, the ones asked for stay
