"""Real HTTP calls to the gateway API (urllib against pytest-django's live_server)."""

import json
import urllib.error
import urllib.request

TOKEN = "test-gateway-token"


def call(base_url, path, body, *, token=TOKEN, raw=None, timeout=30):
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"{base_url}/api/v1/gateway/{path}",
        data=data,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
