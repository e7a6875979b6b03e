"""Runway's orchestrator: the Django project that owns every run's state.

It holds the data model, the rules engine, the services that change state, and
(in later layers) the REST API, admin and UI. It never imports `sdk`.
"""
