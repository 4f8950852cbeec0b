"""Calls to the gateway API: real HTTP (urllib against pytest-django's live_server) for
the few tests of the wire path, Django's test client for everything else."""

import json
import urllib.error
import urllib.request

TOKEN = "test-gateway-token"


def call(base_url, path, body, *, token=TOKEN, raw=None, timeout=30):
    """POST over real HTTP; returns (status, decoded JSON body)."""
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


def post(client, path, body, *, token=TOKEN, raw=None):
    """The same POST through Django's test client (no server, no socket, no commit);
    returns (status, decoded JSON body)."""
    data = raw if raw is not None else json.dumps(body)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token is not None else {}
    resp = client.post(
        f"/api/v1/gateway/{path}", data=data, content_type="application/json", **headers
    )
    return resp.status_code, json.loads(resp.content)
