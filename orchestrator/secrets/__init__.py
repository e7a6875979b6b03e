"""Secrets: values (API keys, passwords) stored encrypted, read by name from flows.

Prefect's Secret block: `Secret.load("github-token").get()` in a flow (sdk/secrets.py)
reads the value through the client; in process the service decrypts it, over HTTP
the API answers it only to a write-scoped token (`POST /api/secrets/{name}/reveal/`).
No list, detail, admin or UI page shows a value, and secrets send no live events.
The SDK replaces every value it read by ******** in what it sends back (logs, state
messages, tracebacks). docs/secrets.md tells the story.

  names.py      the name rule (plain Python: the SDK checks names before sending them)
  crypto.py     Fernet keys from RUNWAY_SECRETS_KEY (or derived from SECRET_KEY), encrypt, decrypt, rotate
  models.py     Secret: a unique name and the encrypted value
  services.py   set, delete, read the value, re-encrypt under the current key
  selectors.py  secrets without their values, for the CLI, API and admin
"""
