"""The UI in a real browser (headless Chromium) against a real server process on the test database."""
from __future__ import annotations

import re
import textwrap
import time
import uuid

import pytest
from playwright.sync_api import expect

from tests.conftest import ServerProcess
from tests.deployments.conftest import wait_until
from tests.sdk.conftest import run_script
from tests.ui.conftest import log_in, orm


def _flow_script(name: str, body: str = "") -> str:
    return textwrap.dedent(f"""
        from sdk import flow, task, get_run_logger
        @task
        def double(x):
            return x * 2
        @task
        def add(a, b):
            return a + b
        @flow(name="{name}")
        def pipeline(n: int = 3):
            a = double(n)
            b = double.submit(n + 1)
            get_run_logger().info("pipeline says hello")
            {body}
            return add(a, b)
        pipeline()
    """)


def test_a_run_made_before_the_server_started_is_there_after_logging_in(browser, ui_user, screenshots):
    name = f"before-server-{uuid.uuid4().hex[:6]}"
    done = run_script(_flow_script(name))
    assert done.returncode == 0, done.stderr
    server = ServerProcess().start()  # started after the run, on the same database
    try:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(f"{server.url}/flow-runs/")
        expect(page).to_have_url(re.compile(r"/login/\?next=/flow-runs/"))  # login required
        log_in(page, server.url, ui_user)
        page.goto(f"{server.url}/flow-runs/?flow={name}")
        row = page.locator("tr[data-run-id]").filter(has_text=name)
        expect(row).to_have_count(1)
        expect(row.locator(".state")).to_have_text(re.compile("Completed"))
        row.get_by_role("link").first.click()
        expect(page.get_by_role("heading", name="Task graph")).to_be_visible()
        expect(page.locator("[data-live-rows='task_runs'] tr")).to_have_count(3)
        expect(page.locator("svg.graph line.edge")).to_have_count(1)  # the submitted double fed add (a future)
        expect(page.locator("[data-live-logs]")).to_contain_text("pipeline says hello")
        page.get_by_label("Level").select_option("30")
        page.get_by_role("button", name="Filter").click()
        expect(page.locator("[data-live-logs] tr")).to_have_count(0)
        context.close()
    finally:
        server.stop()


def test_a_running_flow_s_state_and_logs_update_live_without_a_reload(page, live_server, tmp_path, screenshots):
    from orchestrator.runs.models import FlowRun

    name = f"live-{uuid.uuid4().hex[:6]}"
    go = tmp_path / "go"
    body = (f"import pathlib, time\n            while not pathlib.Path({str(go)!r}).exists(): time.sleep(0.05)\n"
            "            get_run_logger().warning('second step reached')")  # fmt: skip
    import subprocess
    import sys

    from tests.sdk.conftest import REPO

    process = subprocess.Popen([sys.executable, "-c", _flow_script(name, body)], cwd=REPO)
    try:
        running = FlowRun.objects.filter(flow__name=name, state_type="RUNNING")
        run = wait_until(lambda: orm(running.first), 60, "the run")
        page.goto(f"{live_server}/runs/{run.pk}/")
        expect(page.locator("[data-live-state] .state")).to_have_text(re.compile("Running"))
        expect(page.locator("#live-status")).to_have_text(re.compile("Live"))
        page.evaluate("window.__notReloaded = true")
        page.screenshot(path=str(screenshots / "flow-run-running.png"), full_page=True)
        go.write_text("go")
        expect(page.locator("[data-live-logs]")).to_contain_text("second step reached")
        expect(page.locator("[data-live-state] .state")).to_have_text(re.compile("Completed"))
        expect(page.locator("[data-live-rows='task_runs'] tr")).to_have_count(3)
        assert page.evaluate("window.__notReloaded") is True
    finally:
        go.write_text("go")
        process.wait(timeout=60)


def test_new_runs_appear_in_the_list_and_updates_fall_back_to_polling_when_the_socket_drops(page, live_server):
    name = f"poll-{uuid.uuid4().hex[:6]}"
    page.route_web_socket(re.compile(r".*/ws/live/"), lambda socket: socket.close())
    page.goto(f"{live_server}/flow-runs/?flow={name}")
    expect(page.locator("#live-status")).to_have_text(re.compile("reconnecting"))
    page.evaluate("window.__notReloaded = true")
    done = run_script(_flow_script(name))
    assert done.returncode == 0, done.stderr
    row = page.locator("tr[data-run-id]").filter(has_text=name)
    expect(row).to_have_count(1, timeout=20_000)
    expect(row.locator(".state")).to_have_text(re.compile("Completed"))
    assert page.evaluate("window.__notReloaded") is True


def test_the_websocket_refuses_a_visitor_who_is_not_logged_in(browser, live_server):
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{live_server}/login/")
    code = page.evaluate("""() => new Promise(resolve => {
        const ws = new WebSocket(location.origin.replace('http', 'ws') + '/ws/live/');
        ws.onclose = event => resolve(event.code);
    })""")
    assert code != 1000 and code in (1006, 4401)
    context.close()


@pytest.fixture
def deployment(tmp_path):
    """A deployment of a flow with typed parameters (no agent: its runs wait in the queue)."""
    from sdk.deployments import deploy

    name = f"params_{uuid.uuid4().hex[:6]}"
    path = tmp_path / "flows.py"
    path.write_text(textwrap.dedent(f"""
        from sdk import flow
        @flow
        def {name}(count: int, label: str = "daily", dry_run: bool = False, weights: list[float] | None = None):
            return count
    """))
    queue = f"ui-{uuid.uuid4().hex[:6]}"
    from orchestrator.deployments.services import work_queue_create

    orm(work_queue_create, name=queue)
    deployed = orm(deploy, f"{path}:{name}", name="nightly", work_queue_name=queue, cron="0 9 * * *", parameters={"count": 2},
                   timezone="Europe/Paris", storage=tmp_path / "storage")  # fmt: skip
    return deployed, queue


def test_quick_run_and_run_with_parameters_from_a_form_generated_from_the_flow(page, live_server, deployment, screenshots):
    from orchestrator.runs.models import FlowRun

    deployed, _ = deployment
    page.goto(f"{live_server}/deployments/")
    row = page.locator("tr[data-deployment='nightly']").filter(has_text=deployed.name.split("/")[0])
    expect(row).to_contain_text("At 09:00, Europe/Paris")
    row.get_by_role("link", name="Run with parameters…").click()
    page.get_by_label("Count").fill("2.5")
    page.get_by_label("Label").fill("adhoc")
    page.get_by_label("Weights").fill("[0.5,")
    page.get_by_role("button", name="Run").click()
    expect(page.get_by_role("alert").filter(has_text="whole number")).to_have_count(1)
    expect(page.get_by_role("alert").filter(has_text="not valid JSON")).to_have_count(1)
    page.screenshot(path=str(screenshots / "deployment-run-form.png"), full_page=True)
    page.get_by_label("Count").fill("7")
    page.get_by_label("Dry run").select_option("true")
    page.get_by_label("Weights").fill("[0.5, 1.5]")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("[data-live-state] .state")).to_have_text(re.compile("Scheduled|Pending|Late"))
    run = orm(FlowRun.objects.get, pk=page.url.rstrip("/").split("/")[-1])
    assert run.parameters == {"count": 7, "label": "adhoc", "dry_run": True, "weights": [0.5, 1.5]}
    assert str(run.deployment_id) == str(deployed.id)
    # Quick run: the deployment's defaults.
    page.goto(f"{live_server}/deployments/{deployed.id}/")
    page.get_by_role("button", name="Quick run").click()
    expect(page.locator(".message.success")).to_contain_text("Created run")
    quick = orm(FlowRun.objects.get, pk=page.url.rstrip("/").split("/")[-1])
    assert quick.parameters == {"count": 2} and quick.state_type in ("SCHEDULED", "PENDING")


def test_pausing_a_work_queue_from_its_page(page, live_server, deployment):
    from orchestrator.deployments.models import WorkQueue

    _, queue = deployment
    page.goto(f"{live_server}/work-queues/")
    page.locator(f"tr[data-queue='{queue}']").get_by_role("link", name=queue).click()
    page.get_by_role("button", name="Pause queue").click()
    expect(page.locator(".message.success")).to_contain_text(f"Work queue {queue} is paused")
    assert orm(WorkQueue.objects.get, name=queue).is_paused
    page.get_by_role("button", name="Resume queue").click()
    expect(page.locator(".message.success")).to_contain_text("is active")
    assert not orm(WorkQueue.objects.get, name=queue).is_paused


def test_a_filter_saved_as_a_named_view_opens_from_the_navigation(page, live_server):
    page.goto(f"{live_server}/flow-runs/?state=FAILED&state=CRASHED&range=7d")
    page.get_by_label("Save this filter as").fill("Failures this week")
    page.get_by_role("button", name="Save view").click()
    page.goto(f"{live_server}/")
    page.get_by_role("link", name="Failures this week").click()
    expect(page).to_have_url(re.compile(r"/flow-runs/\?state=FAILED&state=CRASHED&range=7d"))
    assert page.locator("input[name=state][value=FAILED]").is_checked()
    assert page.locator("select[name=range]").input_value() == "7d"


def test_every_main_page_renders_and_is_screenshotted_in_each_theme(page, live_server, screenshots, deployment):
    from orchestrator.runs.models import FlowRun, TaskRun

    done = run_script(_flow_script(f"shots-{uuid.uuid4().hex[:6]}"))
    assert done.returncode == 0, done.stderr
    run = orm(FlowRun.objects.filter(state_type="COMPLETED", task_runs__isnull=False).order_by("-created").first)
    task = orm(TaskRun.objects.filter(flow_run=run).first)
    deployed, queue = deployment
    pages = {"dashboard": "/", "flows": "/flows/", "flow-runs": "/flow-runs/", "flow-run": f"/runs/{run.pk}/",
             "task-runs": "/task-runs/", "task-run": f"/task-runs/{task.pk}/", "deployments": "/deployments/",
             "deployment": f"/deployments/{deployed.id}/", "work-queues": "/work-queues/",
             "work-queue": f"/work-queues/{queue}/", "concurrency-limits": "/concurrency-limits/",
             "tokens": "/tokens/", "settings": "/settings/"}  # fmt: skip
    for name, path in pages.items():
        response = page.goto(f"{live_server}{path}")
        assert response.status == 200, f"{path}: {response.status}"
        expect(page.locator("main h1")).to_be_visible()
        page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)
    page.goto(f"{live_server}/settings/")
    page.get_by_label("Dark").check()
    page.get_by_label("Colour-blind friendly (Okabe-Ito)").check()
    page.get_by_role("button", name="Save").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    expect(page.locator("html")).to_have_attribute("data-palette", "colorblind")
    page.goto(f"{live_server}/")
    page.screenshot(path=str(screenshots / "dashboard-dark-colorblind.png"), full_page=True)
    page.goto(f"{live_server}/runs/{run.pk}/")
    page.screenshot(path=str(screenshots / "flow-run-dark-colorblind.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    page.goto(f"{live_server}/flow-runs/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1  # nothing wider than the screen
    page.screenshot(path=str(screenshots / "flow-runs-phone.png"), full_page=True)


def test_the_pages_can_be_used_with_the_keyboard_alone(page, live_server):
    page.goto(f"{live_server}/")
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to content")
    page.keyboard.press("Enter")
    expect(page.locator(":focus")).to_have_id("main")
    page.goto(f"{live_server}/")
    for _ in range(40):  # tab through to the Flow runs link and follow it
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Flow runs":
            break
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/flow-runs/$"))
    # every state badge carries its name as text, not only a colour
    for badge in page.locator(".state").all()[:20]:
        assert badge.locator(".state-name").inner_text().strip()


def test_with_the_redis_channel_layer_a_change_made_in_another_process_reaches_the_page_at_once(browser, ui_user):
    """The page looks by itself only every 60 s here: the row can only come from the flow process's
    nudge, through Redis, to the server's consumer."""
    env = {"RUNWAY_CHANNEL_LAYER_URL": "redis://127.0.0.1:6379/3", "RUNWAY_UI_LIVE_SECONDS": "60"}
    name = f"nudged-{uuid.uuid4().hex[:6]}"
    server = ServerProcess(**env).start()
    context = browser.new_context()
    try:
        page = context.new_page()
        log_in(page, server.url, ui_user)
        page.goto(f"{server.url}/flow-runs/?flow={name}")
        expect(page.locator("#live-status")).to_have_text(re.compile("Live: updates"))
        time.sleep(1)  # the first look, made on subscribing, is over
        started = time.monotonic()
        done = run_script(_flow_script(name), **env)
        assert done.returncode == 0, done.stderr
        row = page.locator("tr[data-run-id]").filter(has_text=name)
        expect(row.locator(".state")).to_have_text(re.compile("Completed"), timeout=15_000)
        assert time.monotonic() - started < 30
    finally:
        context.close()
        server.stop()


def test_the_dashboard_s_latest_runs_show_a_new_run_live(page, live_server):
    name = f"dash-{uuid.uuid4().hex[:6]}"
    page.goto(f"{live_server}/")
    expect(page.locator("#live-status")).to_have_text(re.compile("Live: updates"))
    page.evaluate("window.__notReloaded = true")
    done = run_script(_flow_script(name))
    assert done.returncode == 0, done.stderr
    latest = page.locator("section[aria-labelledby='recent-h'] tr[data-run-id]")
    expect(latest.filter(has_text=name).locator(".state")).to_have_text(re.compile("Completed"))
    assert latest.count() <= 10 and page.evaluate("window.__notReloaded") is True
