"""URL routes: the admin for now; the API and UI arrive with their issues."""
from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
