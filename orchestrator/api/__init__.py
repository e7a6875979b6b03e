"""The REST API (Django REST framework): parse, call a service or selector, render.

No rule or state change lives here: `set_state` calls the same service as the
SDK's in-process client, so every transport gets the same answers.
"""
