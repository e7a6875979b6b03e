"""URL routes: the REST API under /api/, the admin under /admin/, the web UI at the root."""
from django.contrib import admin
from django.urls import include, path

admin.site.site_header = admin.site.site_title = "Runway administration"
admin.site.index_title = "Runs, deployments, queues and tokens"

urlpatterns = [
    path("api/", include("orchestrator.api.urls")),
    path("admin/", admin.site.urls),
    path("", include("orchestrator.ui.urls")),
]

handler404 = "orchestrator.api.errors.not_found"
