"""The security suite: who may do what, and what the server refuses (`pytest tests/security`).

Fixtures: tokens of users with and without the deployment permissions, stored flow code under
RUNWAY_DEPLOYMENT_ROOTS, browsers logged in to the live server, real `celery worker` processes
(tests/workers), and notification rules, runs and a webhook receiver (tests/notifications).
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.notifications.conftest import (  # noqa: F401  (fixtures)
    flow_name,
    make_rule,
    make_run,
    settings_override,
    webhook_server,
)
from tests.workers.conftest import start_worker  # noqa: F401  (a fixture)

PASSWORD = "a-long-password-for-security-tests"
DEPLOYMENT_PERMISSIONS = ("add_deployment", "change_deployment", "delete_deployment")


def grant(user, *codenames: str) -> None:
    """Give `user` these permissions of the deployments app (Django's model permissions)."""
    from django.contrib.auth.models import Permission

    found = Permission.objects.filter(content_type__app_label="deployments", codename__in=codenames)
    assert found.count() == len(codenames), codenames
    user.user_permissions.add(*found)


def user_of(raw_token: str):
    from orchestrator.accounts.services import token_authenticate

    return token_authenticate(raw=raw_token).user


@pytest.fixture
def deployer_token(make_token) -> str:
    """A write token of a user who may add, change and delete deployments."""
    raw = make_token()
    grant(user_of(raw), *DEPLOYMENT_PERMISSIONS)
    return raw


@pytest.fixture
def stored_flow() -> Callable[..., Path]:
    """stored_flow(source=None, file="flows.py") -> a directory of deployment storage holding `file`
    (by default a module with the flow `f` and a plain function `helper`)."""
    from django.conf import settings

    def store(source: str | None = None, file: str = "flows.py") -> Path:
        code = settings.RUNWAY_DEPLOYMENT_STORAGE / "security-tests" / uuid.uuid4().hex
        code.mkdir(parents=True)
        (code / file).write_text(source or FLOWS)
        return code

    return store


FLOWS = """
from sdk import flow

@flow
def f(msg: str = "hi") -> str:
    return msg

def helper(msg: str = "hi") -> str:
    return msg
"""


def log_in(base_url: str, username: str, password: str = PASSWORD, *, origin: bool = True) -> httpx.Client:
    """An httpx client logged in to the UI through its login form (a session cookie, like a browser)."""
    browser = httpx.Client(base_url=base_url, timeout=60, headers={"Referer": base_url + "/"} if origin else {})
    browser.get("/login/")
    answer = browser.post("/login/", data={"username": username, "password": password,
                                           "csrfmiddlewaretoken": browser.cookies["csrftoken"]})  # fmt: skip
    assert answer.status_code == 302 and "sessionid" in browser.cookies, answer.text[:500]
    return browser


@pytest.fixture
def make_user():
    """make_user(superuser=False, staff=False) -> a new user with the suite's password."""
    from django.contrib.auth import get_user_model

    def make(*, superuser: bool = False, staff: bool = False):
        name = f"sec-{uuid.uuid4().hex[:8]}"
        model = get_user_model().objects
        if superuser:
            return model.create_superuser(username=name, password=PASSWORD)
        return model.create_user(username=name, password=PASSWORD, is_staff=staff)

    return make
