"""Admin access rule: the admin token (header or bearer) or the login cookie, from anywhere, never
the caller's address; cookie requests also need a known Host, and writes JSON from the same origin."""

from __future__ import annotations

from http.cookies import SimpleCookie

import httpx
import pytest
from redis.asyncio import Redis

from codex_broker.cli import admin_login
from codex_broker.http_api.admin import access
from codex_broker.libs.keys import Keys
from tests.http_api.admin.conftest import ADMIN_HEADERS, ADMIN_TOKEN, BASE_URL, ClientFactory

REMOTE = ("10.20.30.40", 50000)
JSON = {"content-type": "application/json"}
SAME_ORIGIN = {**JSON, "origin": BASE_URL}


# ---- pure rules ------------------------------------------------------------------------------


def test_presented_token_prefers_header_then_bearer() -> None:
    assert access.presented_token({"x-admin-token": " abc "}) == "abc"
    assert access.presented_token({"authorization": "Bearer xyz"}) == "xyz"
    assert access.presented_token({"authorization": "bearer xyz"}) == "xyz"
    assert access.presented_token({"authorization": "Basic xyz"}) is None
    assert access.presented_token({"authorization": "Bearer "}) is None
    assert access.presented_token({}) is None


def test_cookie_is_bound_to_the_token_and_expires() -> None:
    now = 1_800_000_000
    cookie = access.mint_cookie("t0k3n", now, 60)
    assert access.cookie_valid(cookie, "t0k3n", now + 59)
    assert not access.cookie_valid(cookie, "t0k3n", now + 60)  # expired
    assert not access.cookie_valid(cookie, "other-token", now)  # the token was rotated
    assert not access.cookie_valid(cookie, None, now)  # no token configured at all
    version, expires, nonce, mac = cookie.split(".")
    assert not access.cookie_valid(f"{version}.{int(expires) + 3600}.{nonce}.{mac}", "t0k3n", now)
    for broken in ("", "v1", "v1.x.y.z", f"v2.{expires}.{nonce}.{mac}", cookie + "0"):
        assert not access.cookie_valid(broken, "t0k3n", now), broken
    assert "t0k3n" not in cookie


@pytest.mark.parametrize(
    ("header", "name"),
    [("127.0.0.1:3000", "127.0.0.1"), ("LOCALHOST", "localhost"), ("[::1]:3000", "::1"), ("", "")],
)
def test_host_name(header: str, name: str) -> None:
    assert access.host_name(header) == name


def test_allowed_hosts() -> None:
    assert access.allowed_hosts([], "127.0.0.1") == {"localhost", "127.0.0.1", "::1"}
    assert access.allowed_hosts([], "0.0.0.0") == {"localhost", "127.0.0.1", "::1"}
    assert "10.0.0.5" in access.allowed_hosts([], "10.0.0.5")
    assert access.allowed_hosts(["Admin.Example.org", " "], "0.0.0.0") == {"admin.example.org"}


def test_origin_must_be_the_host() -> None:
    assert access.origin_matches(None, "127.0.0.1:3000")
    assert access.origin_matches("http://127.0.0.1:3000", "127.0.0.1:3000")
    assert not access.origin_matches("http://127.0.0.1:3001", "127.0.0.1:3000")
    assert not access.origin_matches("http://evil.example", "127.0.0.1:3000")
    assert not access.origin_matches("null", "127.0.0.1:3000")


def test_json_content_type() -> None:
    assert access.is_json("application/json")
    assert access.is_json("Application/JSON; charset=utf-8")
    for other in (None, "", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        assert not access.is_json(other)


def _facts(method: str = "GET", cookie: str | None = None, **headers: str) -> access.RequestFacts:
    return access.RequestFacts(method=method, headers=headers, cookie=cookie, now_s=1_800_000_000)


def test_decide() -> None:
    hosts = access.allowed_hosts([], "127.0.0.1")
    cookie = access.mint_cookie("t0k3n", 1_800_000_000, 60)
    token = {"x-admin-token": "t0k3n"}
    assert access.decide(_facts(**token), "t0k3n", hosts) is None
    assert (
        access.decide(_facts(**token, host="evil.example"), "t0k3n", hosts) is None
    )  # a header is no cookie
    assert access.decide(_facts(), "t0k3n", hosts) == access.AUTH_REQUIRED
    assert access.decide(_facts(**{"x-admin-token": "wrong"}), "t0k3n", hosts) == access.AUTH_REQUIRED
    assert access.decide(_facts(**token), None, hosts) == access.AUTH_REQUIRED  # nothing configured
    assert access.decide(_facts(cookie=cookie, host="127.0.0.1:3000"), "t0k3n", hosts) is None
    assert (
        access.decide(_facts(cookie=cookie, host="rebind.evil:3000"), "t0k3n", hosts) == access.HOST_REFUSED
    )
    post = {"host": "127.0.0.1:3000", "content-type": "application/json"}
    assert access.decide(_facts("POST", cookie, **post), "t0k3n", hosts) is None
    cross = {**post, "origin": "http://evil.example"}
    assert access.decide(_facts("DELETE", cookie, **cross), "t0k3n", hosts) == access.ORIGIN_MISMATCH
    form = {**post, "content-type": "application/x-www-form-urlencoded"}
    assert access.decide(_facts("POST", cookie, **form), "t0k3n", hosts) == access.JSON_REQUIRED
    assert access.decide(_facts("PUT", None, **token), "t0k3n", hosts) == access.JSON_REQUIRED


# ---- over HTTP -------------------------------------------------------------------------------

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
async def test_loopback_without_the_token_is_refused(
    admin_client: ClientFactory, method: str, path: str
) -> None:
    """The red-team finding: a loopback caller without the token used to be served."""
    for token in (ADMIN_TOKEN, None):  # configured or not, loopback alone opens nothing
        for client in (("127.0.0.1", 1234), ("::1", 1234)):
            http = await admin_client(token=token, client=client)
            for headers in ({}, {"x-admin-token": "nope"}, {"authorization": "Bearer nope"}):
                response = await http.request(method, path, headers={**headers, **JSON})
                assert response.status_code == 401, (method, path, headers, token)
                assert response.json() == {"ok": False, "error": "admin_auth_required"}


async def test_token_accepted_as_header_or_bearer_from_any_client(admin_client: ClientFactory) -> None:
    http = await admin_client(client=REMOTE)
    by_header = await http.get("/admin/api/sessions", headers=ADMIN_HEADERS)
    by_bearer = await http.get("/admin/api/sessions", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert by_header.status_code == 200 and by_header.json()["ok"] is True
    assert by_bearer.status_code == 200


async def test_writes_need_json_even_with_the_token(admin_client: ClientFactory) -> None:
    http = await admin_client(headers=ADMIN_HEADERS)
    for method, path in [e for e in ENDPOINTS if e[0] != "GET"]:
        bare = await http.request(method, path)
        assert bare.status_code == 415 and bare.json()["error"] == "admin_json_required", path
        form = await http.request(method, path, content=b"a=1", headers={"content-type": "text/plain"})
        assert form.status_code == 415, path
    reset = await http.post("/admin/api/sessions/slack:C1:1/reset", json={})
    assert reset.status_code == 404  # past the checks: the session does not exist


def _cookie(response: httpx.Response) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    jar.load(response.headers["set-cookie"])
    return jar


async def test_login_with_the_token_sets_a_strict_httponly_cookie(admin_client: ClientFactory) -> None:
    http = await admin_client()
    response = await http.post("/admin/api/login", json={"token": ADMIN_TOKEN}, headers={"origin": BASE_URL})
    assert response.status_code == 200, response.text
    morsel = _cookie(response)[access.COOKIE_NAME]
    assert morsel["httponly"] and morsel["samesite"] == "strict" and morsel["path"] == "/admin"
    assert ADMIN_TOKEN not in morsel.value
    assert int(morsel["max-age"]) == 12 * 3600
    listed = await http.get("/admin/api/sessions")  # httpx keeps the cookie
    assert listed.status_code == 200, listed.text
    wrote = await http.post("/admin/api/sessions/slack:C1:1/reset", json={}, headers={"origin": BASE_URL})
    assert wrote.status_code == 404  # authorized; the session does not exist

    logout = await http.post("/admin/api/logout", json={})
    assert logout.status_code == 200 and int(_cookie(logout)[access.COOKIE_NAME]["max-age"]) == 0
    assert (await http.get("/admin/api/sessions")).status_code == 401


async def test_cookie_requests_are_checked_for_host_origin_and_json(admin_client: ClientFactory) -> None:
    http = await admin_client()
    await http.post("/admin/api/login", json={"token": ADMIN_TOKEN})
    cookie = http.cookies[access.COOKIE_NAME]
    path = "/admin/api/github-authors/U1?platform=slack"
    # DNS rebinding: a page on evil.example resolved to 127.0.0.1 sends Host: evil.example
    rebound = await admin_client(base_url="http://evil.example:3000")
    rebound.cookies.set(access.COOKIE_NAME, cookie)
    refused = await rebound.get("/admin/api/sessions")
    assert refused.status_code == 403 and refused.json()["error"] == "admin_host_refused"
    cross = await http.request("DELETE", path, headers={**JSON, "origin": "http://evil.example"})
    assert cross.status_code == 403 and cross.json()["error"] == "admin_origin_mismatch"
    not_json = await http.request(
        "DELETE", path, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert not_json.status_code == 415 and not_json.json()["error"] == "admin_json_required"
    same = await http.request("DELETE", path, headers=SAME_ORIGIN)
    assert same.status_code == 404 and same.json()["error"] == "unknown_author"  # past every check


async def test_allowed_hosts_setting_names_the_hosts_the_cookie_works_on(admin_client: ClientFactory) -> None:
    http = await admin_client(base_url="http://admin.example.org", admin_allowed_hosts=["admin.example.org"])
    assert (await http.post("/admin/api/login", json={"token": ADMIN_TOKEN})).status_code == 200
    assert (await http.get("/admin/api/sessions")).status_code == 200
    local = await admin_client(admin_allowed_hosts=["admin.example.org"])
    assert (await local.post("/admin/api/login", json={"token": ADMIN_TOKEN})).json()["error"] == (
        "admin_host_refused"
    )


async def test_login_refusals(admin_client: ClientFactory) -> None:
    http = await admin_client()
    cases = [
        ({"json": {"token": "wrong"}}, 401, "admin_login_refused"),
        ({"json": {"code": "never-issued"}}, 401, "admin_login_refused"),
        ({"json": {}}, 400, "provide_token_or_code"),
        ({"json": {"token": ADMIN_TOKEN, "code": "x"}}, 400, "provide_token_or_code"),
        ({"json": {"token": 5}}, 400, "invalid_login"),
        ({"content": b"token=" + ADMIN_TOKEN.encode()}, 415, "admin_json_required"),
        (
            {"json": {"token": ADMIN_TOKEN}, "headers": {"origin": "http://evil.example"}},
            403,
            "admin_origin_mismatch",
        ),
    ]
    for request, status, code in cases:
        response = await http.post("/admin/api/login", **request)  # type: ignore[arg-type]
        assert (response.status_code, response.json()["error"]) == (status, code), request
        assert "set-cookie" not in response.headers
    unconfigured = await admin_client(token=None)
    closed = await unconfigured.post("/admin/api/login", json={"token": "anything"})
    assert closed.status_code == 401 and closed.json()["error"] == "admin_auth_required"


async def test_the_code_up_prints_logs_in_once(
    admin_client: ClientFactory, redis_url: str, redis: Redis, keys: Keys
) -> None:
    code = await admin_login.issue_code(redis_url, keys, ttl_s=60)
    stored = [k async for k in redis.scan_iter(match=keys.admin_login_code("*"))]
    assert len(stored) == 1 and code.encode() not in stored[0]  # only its hash is in Redis
    assert 0 < await redis.ttl(stored[0]) <= 60
    http = await admin_client()
    first = await http.post("/admin/api/login", json={"code": code})
    assert first.status_code == 200 and access.COOKIE_NAME in http.cookies
    assert (await http.get("/admin/api/status")).status_code == 200
    again = await (await admin_client()).post("/admin/api/login", json={"code": code})
    assert again.status_code == 401 and again.json()["error"] == "admin_login_refused"


async def test_page_and_assets_are_static_and_need_no_token(admin_client: ClientFactory) -> None:
    http = await admin_client(client=REMOTE)
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
    http = await admin_client(headers=ADMIN_HEADERS)
    response = await http.put("/admin/api/auth-profiles")
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    assert (await http.head("/admin/api/sessions")).status_code == 200


async def test_page_loads_nothing_external(admin_client: ClientFactory) -> None:
    http = await admin_client()
    for path in ("/admin", "/admin/static/admin.js", "/admin/static/admin.css"):
        body = (await http.get(path)).text
        assert "http://" not in body and "https://" not in body and "//cdn" not in body, path
