"""Admin access rule: the token when configured (header or bearer), loopback only otherwise."""

from __future__ import annotations

import pytest

from codex_broker.http_api.admin import access
from tests.http_api.admin.conftest import ADMIN_TOKEN, ClientFactory

REMOTE = ("10.20.30.40", 50000)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.5.0.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("testclient", False),
        ("", False),
        (None, False),
    ],
)
def test_is_loopback(host: str | None, expected: bool) -> None:
    assert access.is_loopback(host) is expected


def test_presented_token_prefers_header_then_bearer() -> None:
    assert access.presented_token({"x-admin-token": " abc "}) == "abc"
    assert access.presented_token({"authorization": "Bearer xyz"}) == "xyz"
    assert access.presented_token({"authorization": "bearer xyz"}) == "xyz"
    assert access.presented_token({"authorization": "Basic xyz"}) is None
    assert access.presented_token({"authorization": "Bearer "}) is None
    assert access.presented_token({}) is None


def test_decide() -> None:
    assert access.decide("t0k3n", "t0k3n", "10.0.0.1") is access.Access.ALLOWED
    assert access.decide("t0k3n", "wrong", "127.0.0.1") is access.Access.TOKEN_REQUIRED
    assert access.decide("t0k3n", None, "127.0.0.1") is access.Access.TOKEN_REQUIRED
    assert access.decide(None, None, "127.0.0.1") is access.Access.ALLOWED
    assert access.decide(None, "anything", "10.0.0.1") is access.Access.LOOPBACK_ONLY


ENDPOINTS = [
    ("GET", "/admin/api/status"),
    ("GET", "/admin/api/sessions"),
    ("GET", "/admin/api/jobs"),
    ("GET", "/admin/api/auth-profiles"),
    ("GET", "/admin/api/github-authors"),
    ("POST", "/admin/api/auth-profiles"),
    ("POST", "/admin/api/github-authors"),
    ("DELETE", "/admin/api/sessions/slack:C1:1"),
    ("POST", "/admin/api/sessions/slack:C1:1/reset"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_token_required_when_configured(admin_client: ClientFactory, method: str, path: str) -> None:
    http = await admin_client(token=ADMIN_TOKEN)
    for headers in ({}, {"x-admin-token": "nope"}, {"authorization": "Bearer nope"}):
        response = await http.request(method, path, headers=headers)
        assert response.status_code == 401, (method, path, headers)
        assert response.json() == {"ok": False, "error": "admin_auth_required"}


async def test_token_accepted_as_header_or_bearer_from_any_client(admin_client: ClientFactory) -> None:
    http = await admin_client(token=ADMIN_TOKEN, client=REMOTE)
    by_header = await http.get("/admin/api/sessions", headers={"x-admin-token": ADMIN_TOKEN})
    by_bearer = await http.get("/admin/api/sessions", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert by_header.status_code == 200 and by_header.json()["ok"] is True
    assert by_bearer.status_code == 200


async def test_without_token_loopback_is_served(admin_client: ClientFactory) -> None:
    for client in (("127.0.0.1", 1234), ("::1", 1234)):
        http = await admin_client(client=client)
        response = await http.get("/admin/api/status")
        assert response.status_code == 200, client


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_without_token_remote_clients_are_refused(
    admin_client: ClientFactory, method: str, path: str
) -> None:
    http = await admin_client(client=REMOTE)
    response = await http.request(method, path)
    assert response.status_code == 403
    assert response.json() == {"ok": False, "error": "admin_loopback_only"}


async def test_page_and_assets_are_static_and_need_no_token(admin_client: ClientFactory) -> None:
    http = await admin_client(token=ADMIN_TOKEN, client=REMOTE)
    page = await http.get("/admin")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert ADMIN_TOKEN not in page.text
    for name, kind in (("admin.js", "javascript"), ("admin.css", "text/css")):
        asset = await http.get(f"/admin/static/{name}")
        assert asset.status_code == 200 and kind in asset.headers["content-type"]
    missing = await http.get("/admin/static/..%2Fconfig.py")
    assert missing.status_code == 404
    assert (await http.get("/admin/static/index.html")).status_code == 404


async def test_wrong_method_is_405_naming_every_allowed_method(admin_client: ClientFactory) -> None:
    http = await admin_client()
    response = await http.put("/admin/api/auth-profiles")
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    assert (await http.head("/admin/api/sessions")).status_code == 200


async def test_page_loads_nothing_external(admin_client: ClientFactory) -> None:
    http = await admin_client()
    for path in ("/admin", "/admin/static/admin.js", "/admin/static/admin.css"):
        body = (await http.get(path)).text
        assert "http://" not in body and "https://" not in body and "//cdn" not in body, path
