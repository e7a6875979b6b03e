"""The user's own pages: concurrency limits, API tokens, saved views and display settings."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from orchestrator.accounts.models import ApiToken
from orchestrator.accounts.services import token_create, token_find, token_revoke
from orchestrator.exceptions import InvalidInput
from orchestrator.limits import selectors as limit_selectors
from orchestrator.limits.services import concurrency_limit_create, concurrency_limit_delete
from orchestrator.ui.forms import LimitForm, PreferenceForm, SavedViewForm, TokenForm
from orchestrator.ui.models import Preference, SavedView
from orchestrator.ui.views.common import act


@login_required
def limits_page(request: HttpRequest) -> HttpResponse:
    form = LimitForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            limit, created = concurrency_limit_create(tag=form.cleaned_data["tag"], limit=form.cleaned_data["limit"])
        except InvalidInput as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, f"{'Created' if created else 'Updated'} limit {limit}")
            return redirect("ui:limits")
    limits = [limit_selectors.limit_detail(tag=limit.tag) for limit in limit_selectors.limit_list()[:200]]
    return render(request, "ui/limits.html", {"limits": limits, "form": form},
                  status=400 if request.method == "POST" else 200)  # fmt: skip


@login_required
@require_POST
def limit_delete(request: HttpRequest) -> HttpResponse:
    tag = request.POST.get("tag", "")

    def delete() -> str:
        concurrency_limit_delete(tag=tag)
        return f"Deleted the limit on tag {tag!r}"

    return act(request, delete, "/concurrency-limits/")


@login_required
def tokens_page(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            token, raw = token_create(user=request.user, name=form.cleaned_data["name"], scope=form.cleaned_data["scope"])
        except InvalidInput as error:
            form.add_error(None, str(error))
        else:
            return render(request, "ui/token_created.html", {"token": token, "raw": raw})
    tokens = ApiToken.objects.filter(user=request.user).order_by("-created")
    return render(request, "ui/tokens.html", {"tokens": tokens, "form": form},
                  status=400 if request.method == "POST" else 200)  # fmt: skip


@login_required
@require_POST
def token_revoke_action(request: HttpRequest) -> HttpResponse:
    def revoke() -> str:
        token = token_revoke(token=token_find(ref=request.POST.get("prefix", ""), user=request.user))
        return f"Revoked token {token}"

    return act(request, revoke, "/tokens/")


@login_required
def settings_page(request: HttpRequest) -> HttpResponse:
    # Unsaved until the form is saved: showing the page writes nothing (GET never changes data).
    preference = Preference.objects.filter(user=request.user).first() or Preference(user=request.user)
    form = PreferenceForm(request.POST or None, instance=preference)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Display settings saved")
        return redirect("ui:settings")
    return render(request, "ui/settings.html", {"form": form, "saved_views": request.user.saved_views.all()})


@login_required
@require_POST
def saved_view_create(request: HttpRequest) -> HttpResponse:
    form = SavedViewForm(request.POST, instance=SavedView(user=request.user))
    page = request.POST.get("page") if request.POST.get("page") in dict(SavedView.PAGES) else "flow_runs"
    target = f"/{page.replace('_', '-')}/?{request.POST.get('query', '')}"
    if form.is_valid() and not request.user.saved_views.filter(name=form.cleaned_data["name"]).exists():
        view = form.save()
        messages.success(request, f"Saved view {view.name!r}: it is in the navigation")
        return redirect(view.url)
    messages.error(request, "A saved view needs a name not used by another of your views")
    return redirect(target)


@login_required
@require_POST
def saved_view_delete(request: HttpRequest, view_id: int) -> HttpResponse:
    view = get_object_or_404(SavedView, pk=view_id, user=request.user)
    view.delete()
    messages.success(request, f"Deleted saved view {view.name!r}")
    return redirect("ui:settings")
