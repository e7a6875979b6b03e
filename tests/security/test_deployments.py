"""Deployments name code that agents run. Refused: code outside RUNWAY_DEPLOYMENT_ROOTS, entrypoints leaving
the stored code (`../x.py:f`, a symbolic link out), modules that are not part of it (`os:system`), and
names that are not @flow functions: by the API when a deployment is created or replaced, and by the
agent (a real `celery worker`) before it imports anything, for rows written some other way. Only
users with the deployment permissions create, change or delete deployments: API, admin and UI."""
from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from orchestrator.deployments.models import Deployment
from orchestrator.deployments.services import (
    deployment_create,
    deployment_run_create,
    work_queue_create,
)
from orchestrator.runs.models import FlowRun
from tests.security.conftest import DEPLOYMENT_PERMISSIONS, grant, log_in, user_of

# A flow file whose import leaves a mark: the proof that an agent loaded (or never loaded) it.
MARKING = """
from pathlib import Path
from sdk import flow

Path({marker!r}).write_text("imported")

@flow
def f(msg: str = "hi") -> str:
    return msg

def helper(msg: str = "hi") -> str:
    return msg
"""


def _body(code_path: Path | str, entrypoint: str, name: str = "d", flow_name: str | None = None) -> dict:
    return {"flow_name": flow_name or f"sec-{uuid.uuid4().hex[:6]}", "name": name, "entrypoint": entrypoint,
            "code_path": str(code_path), "code_version": "a" * 64}  # fmt: skip


def _api(live_server: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=f"{live_server}/api/", headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_the_api_refuses_code_outside_the_roots_and_entrypoints_that_are_not_flows_of_the_code(
        live_server, deployer_token, stored_flow, tmp_path):  # fmt: skip
    api = _api(live_server, deployer_token)
    code = stored_flow()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "flows.py").write_text((code / "flows.py").read_text())
    (code / "link.py").symlink_to(outside / "flows.py")
    refused = {
        "outside the roots": (_body(outside, "flows.py:f"), "is outside the deployment roots"),
        "a root, then ..": (_body(f"{code}/../../../..{outside}", "flows.py:f"), "is outside the deployment roots"),
        "relative code_path": (_body("deployments/x", "flows.py:f"), "must be an absolute path"),
        "os:system": (_body(code, "os:system"), "entrypoint module 'os' is not part of the deployment's code"),
        "subprocess:run": (_body(code, "subprocess:run"), "is not part of the deployment's code"),
        "../x.py:f": (_body(code, "../x.py:f"), "without '..'"),
        "an absolute file": (_body(code, f"{outside}/flows.py:f"), "without '..'"),
        "a link out": (_body(code, "link.py:f"), "leads outside the deployment's code"),
        "a plain function": (_body(code, "flows.py:helper"), "'helper' is not a @flow function"),
        "a missing name": (_body(code, "flows.py:nothing"), "'nothing' is not a @flow function"),
        "a dotted name": (_body(code, "flows.py:f.__globals__"), "must look like 'file.py:function'"),
    }
    for case, (body, why) in refused.items():
        answer = api.post("deployments/", json=body)
        assert answer.status_code == 400 and why in answer.json()["detail"], (case, answer.text)
        assert not Deployment.objects.filter(flow__name=body["flow_name"]).exists(), case

    good = _body(code, "flows.py:f")
    assert api.post("deployments/", json=good).status_code == 201
    replaced = api.post("deployments/", json={**good, "entrypoint": "os:system"})  # deploying again, badly
    assert replaced.status_code == 400
    assert Deployment.objects.get(flow__name=good["flow_name"]).entrypoint == "flows.py:f"
    print(f"the API refused {len(refused)} bad deployments and one bad replacement; a flow of stored code was accepted")


@pytest.mark.parametrize("case", ["outside the roots", "../evil.py:f", "os:system", "a plain function"])
def test_an_agent_refuses_before_importing_anything_a_deployment_written_around_the_api(
        case, start_worker, stored_flow, tmp_path):  # fmt: skip
    """The deployment rows are written straight through the service (as a database edit or an old
    row would be); the agent's run of each ends Crashed saying why, and no file of it was imported."""
    marker = tmp_path / "imported"
    code = stored_flow(MARKING.format(marker=str(marker)))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "flows.py").write_text(MARKING.format(marker=str(marker)))
    (code.parent / "evil.py").write_text(MARKING.format(marker=str(marker)))
    code_path, entrypoint, why = {
        "outside the roots": (outside, "flows.py:f", "is outside the deployment roots"),
        "../evil.py:f": (code, "../evil.py:f", "without '..'"),
        "os:system": (code, "os:system", "entrypoint module 'os' is not part of the deployment's code"),
        "a plain function": (code, "flows.py:helper", "'helper' is not a @flow function"),
    }[case]
    queue = f"sec-{uuid.uuid4().hex[:6]}"
    work_queue_create(name=queue)
    start_worker(queue, 1)

    run = _run(code_path, entrypoint, queue)
    assert run.state_name == "Crashed", (run.state_name, run.state.message)
    assert "could not be loaded from its deployment's code" in run.state.message and why in run.state.message
    assert not marker.exists()


def test_an_agent_runs_a_flow_of_the_stored_code(start_worker, stored_flow, tmp_path):
    """The control: the same agent, a deployment of a @flow of stored code: imported, run, Completed."""
    marker = tmp_path / "imported"
    queue = f"sec-{uuid.uuid4().hex[:6]}"
    work_queue_create(name=queue)
    start_worker(queue, 1)
    run = _run(stored_flow(MARKING.format(marker=str(marker))), "flows.py:f", queue)
    assert run.state_name == "Completed", (run.state_name, run.state.message)
    assert marker.read_text() == "imported"


def _run(code_path: Path, entrypoint: str, queue: str) -> FlowRun:
    from tests.deployments.conftest import wait_until

    deployment, _ = deployment_create(flow_name=f"agent-{uuid.uuid4().hex[:6]}", name="d", entrypoint=entrypoint,
                                      code_path=str(code_path), code_version="b" * 64, work_queue_name=queue)  # fmt: skip
    run_id = deployment_run_create(ref=str(deployment.pk)).id
    final = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
    return wait_until(lambda: FlowRun.objects.filter(pk=run_id, state_type__in=final).first(), 90, "the run ending")


# --- who may deploy --------------------------------------------------------------------------
def test_only_users_with_the_deployment_permissions_create_change_or_delete_deployments_over_the_api(
        live_server, make_token, make_user, stored_flow):  # fmt: skip
    from orchestrator.accounts.services import token_create

    code = stored_flow()
    body = _body(code, "flows.py:f")
    nobody = _api(live_server, make_token())
    adder_token = make_token()
    grant(user_of(adder_token), "add_deployment")
    adder = _api(live_server, adder_token)
    admin = _api(live_server, token_create(user=make_user(superuser=True), name="admin")[1])

    denied = nobody.post("deployments/", json=body)
    assert denied.status_code == 403
    assert "may not add deployments: that needs the permission deployments.add_deployment" in denied.json()["detail"]
    assert adder.post("deployments/", json=body).status_code == 201
    deployment_id = Deployment.objects.get(flow__name=body["flow_name"]).pk
    assert "may not change deployments" in adder.post("deployments/", json=body).json()["detail"]  # replacing
    for client in (nobody, adder):
        for verb in ("pause", "resume", "pause_schedule", "resume_schedule"):
            assert client.post(f"deployments/{deployment_id}/{verb}/", json={}).status_code == 403, verb
        assert client.delete(f"deployments/{deployment_id}/").status_code == 403
    assert nobody.get(f"deployments/{deployment_id}/").status_code == 200  # reading needs no permission
    assert nobody.post(f"deployments/{deployment_id}/runs/").status_code == 201  # nor running what is deployed

    assert admin.post("deployments/", json=body).status_code == 200  # a superuser replaces it
    assert admin.post(f"deployments/{deployment_id}/pause/").json()["is_paused"] is True
    assert admin.delete(f"deployments/{deployment_id}/").status_code == 204


def test_only_users_with_the_change_permission_pause_deployments_in_the_ui_and_the_admin(live_server, make_user,
                                                                                          stored_flow):  # fmt: skip
    from django.contrib.auth.models import Permission

    deployment, _ = deployment_create(flow_name=f"ui-{uuid.uuid4().hex[:6]}", name="d", entrypoint="flows.py:f",
                                      code_path=str(stored_flow()), code_version="c" * 64)  # fmt: skip
    viewer, changer = make_user(staff=True), make_user(staff=True)
    for user in (viewer, changer):
        user.user_permissions.add(Permission.objects.get(codename="view_deployment"))
    grant(changer, "change_deployment")

    for user, allowed in ((viewer, False), (changer, True)):
        browser = log_in(live_server, user.username)
        token = {"csrfmiddlewaretoken": browser.cookies["csrftoken"]}
        page = browser.get(f"/deployments/{deployment.pk}/")
        assert page.status_code == 200 and (f"/deployments/{deployment.pk}/pause/" in page.text) is allowed
        paused = browser.post(f"/deployments/{deployment.pk}/pause/", data=token)
        assert paused.status_code == (302 if allowed else 403)
        assert Deployment.objects.get(pk=deployment.pk).is_paused is allowed
        Deployment.objects.filter(pk=deployment.pk).update(is_paused=False)

        assert browser.get("/admin/deployments/deployment/").status_code == 200  # both may look
        acted = browser.post("/admin/deployments/deployment/", follow_redirects=True,
                             data={**token, "action": "pause", "_selected_action": [deployment.pk]})  # fmt: skip
        assert Deployment.objects.get(pk=deployment.pk).is_paused is allowed, acted.text[-500:]
        Deployment.objects.filter(pk=deployment.pk).update(is_paused=False)
        edited = browser.post(f"/admin/deployments/deployment/{deployment.pk}/change/",
                              data={**token, "description": "changed", "work_queue": deployment.work_queue_id,
                                    "tags": "[]", "parameters": "{}", "version": ""})  # fmt: skip
        assert edited.status_code == (302 if allowed else 403)
        assert (Deployment.objects.get(pk=deployment.pk).description == "changed") is allowed
        assert browser.get(f"/admin/deployments/deployment/{deployment.pk}/delete/").status_code == 403  # no delete permission
    assert log_in(live_server, changer.username).get(f"/admin/deployments/deployment/{uuid.uuid4()}/run/").status_code == 404


def test_the_permissions_are_the_models_own(make_user):
    """The superuser (like the first account) has them; a new user has none until given them."""
    admin, user = make_user(superuser=True), make_user()
    names = [f"deployments.{name}" for name in DEPLOYMENT_PERMISSIONS]
    assert admin.has_perms(names) and not any(user.has_perm(name) for name in names)
