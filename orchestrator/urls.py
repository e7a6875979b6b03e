"""URL routes: the REST API under /api/, the admin under /admin/ (the UI arrives with its issue)."""
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

admin.site.site_header = admin.site.site_title = "Runway administration"
admin.site.index_title = "Runs, deployments, queues and tokens"

urlpatterns = [
    path("api/", include("orchestrator.api.urls")),
    path("admin/", admin.site.urls),
    path("", RedirectView.as_view(pattern_name="admin:index"), name="home"),
]

handler404 = "orchestrator.api.errors.not_found"
