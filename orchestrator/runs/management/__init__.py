"""The runs app's command-line interface: `python manage.py flow ...` and `python manage.py flow-run ...`."""
