"""ingress-web in process: its pure parts, and its HTTP app and `web` adapter on the real Redis
with the kit's executor (no browser; the browser suite is tests/e2e/test_web_e2e.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from codex_broker.ingress_web import auth
from codex_broker.ingress_web.adapter import WebPlatform
from codex_broker.ingress_web.app import WebContext, create_app
from codex_broker.ingress_web.files import FileStore
from codex_broker.ingress_web.login_codes import LoginCodes
from codex_broker.ingress_web.normalize import command_text
from codex_broker.ingress_web.render import markdown_html
from codex_broker.ingress_web.thread_store import ThreadStore
from codex_broker.libs.bus import Delivery
from codex_broker.libs.contracts import (
    DownloadPayload,
    InboundEvent,
    OutboundAction,
    PostPayload,
    decode,
    encode,
)
from codex_broker.libs.ingress_kit.inbound import InboundStore
from codex_broker.libs.ingress_kit.live_view import LiveViews
from codex_broker.libs.ingress_kit.outbound import OutboundExecutor
from codex_broker.libs.ingress_kit.platform import Target
from codex_broker.libs.keys import Keys
from codex_broker.libs.paths import session_workspace

TOKEN = "t0ken-for-tests"
KEY = auth.cookie_key(TOKEN, None)


# ---- pure -------------------------------------------------------------------------------------


def test_cookie_roundtrip_forgery_and_expiry() -> None:
    cookie = auth.sign(KEY, "alice", 1_000)
    assert auth.verify(KEY, cookie, now_s=1_500, max_age_s=3600) == "alice"
    assert auth.verify(KEY, cookie.replace("alice", "mallory"), now_s=1_500, max_age_s=3600) is None
    assert auth.verify(auth.cookie_key("other", None), cookie, now_s=1_500, max_age_s=3600) is None
    assert auth.verify(KEY, cookie, now_s=1_000 + 3601, max_age_s=3600) is None
    assert auth.verify(KEY, "garbage", now_s=1_500, max_age_s=3600) is None


def test_sign_in_rules() -> None:
    assert auth.decide_sign_in(TOKEN, TOKEN, "10.0.0.9") is auth.SignIn.ALLOWED
    assert auth.decide_sign_in(TOKEN, "wrong", "127.0.0.1") is auth.SignIn.BAD_TOKEN
    assert auth.decide_sign_in(None, "", "10.0.0.9") is auth.SignIn.TOKEN_UNSET
    assert auth.decide_sign_in(None, "", "127.0.0.1") is auth.SignIn.TOKEN_UNSET  # loopback: no identity
    # without a token, a rebinding page's own host name is refused
    assert not auth.host_allowed("evil.example:3100", token_configured=False, public_host=None)
    assert auth.host_allowed("127.0.0.1:3100", token_configured=False, public_host=None)
    assert auth.host_allowed("[::1]:3100", token_configured=False, public_host=None)


def test_markdown_is_rendered_without_raw_html_or_script_links() -> None:
    html = markdown_html("**bold** <script>alert(1)</script> [x](javascript:alert(1)) `code`")
    assert "<strong>bold</strong>" in html and "<code>code</code>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html  # shown as text
    assert "href=" not in html  # the javascript: link stays plain text
    assert '<a href="https://example.com">' in markdown_html("[ok](https://example.com)")


def test_dash_commands_become_the_orchestrators_commands() -> None:
    assert command_text("-new") == "/new"
    assert command_text("-STATUS please") == "/status please"
    assert command_text("-stop") == "-stop" and command_text("-newish idea") == "-newish idea"


# ---- the app on the real Redis ----------------------------------------------------------------


@pytest_asyncio.fixture
async def client(redis: Redis, keys: Keys, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    ctx = WebContext(
        threads=ThreadStore(redis, keys),
        files=FileStore(redis, keys, web_root=tmp_path / "web", sessions_root=tmp_path / "sessions"),
        inbound=InboundStore(redis, keys, platform="web", maxlen=1000),
        cookie_key=KEY,
        admin_token=TOKEN,
        public_host="127.0.0.1",
        cookie_secure=False,
        session_max_age_s=3600,
        max_upload_bytes=1024,
        stop=asyncio.Event(),
        login_codes=LoginCodes(redis, keys),
    )
    transport = httpx.ASGITransport(app=create_app(ctx), client=("10.1.2.3", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:3100") as http:
        yield http


async def signed_in(client: httpx.AsyncClient, name: str = "alice") -> None:
    response = await client.post("/api/login", json={"name": name, "token": TOKEN})
    assert response.status_code == 200
    assert "httponly" in response.headers["set-cookie"].lower()
    assert "samesite=strict" in response.headers["set-cookie"].lower()


async def inbound_events(redis: Redis, keys: Keys) -> list[InboundEvent]:
    events = []
    for shard in range(keys.shard_count):
        for _, fields in await redis.xrange(keys.inbound_stream(shard)):
            events.append(decode(InboundEvent, fields[b"data"]))
    return events


async def test_errors_are_4xx_with_stable_codes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/threads")).json()["error"] == "sign_in_required"
    bad = await client.post("/api/login", json={"name": "alice", "token": "nope"})
    assert (bad.status_code, bad.json()["error"]) == (401, "bad_token")
    bad_name = await client.post("/api/login", json={"name": "a b", "token": TOKEN})
    assert (bad_name.status_code, bad_name.json()["error"]) == (400, "invalid_name")
    await signed_in(client)
    assert (await client.get("/api/threads/../etc")).status_code == 404
    assert (await client.get("/api/threads/w000000000999")).json()["error"] == "thread_not_found"
    missing = await client.post("/api/threads", json={"client_id": "c" * 16, "text": "  "})
    assert (missing.status_code, missing.json()["error"]) == (400, "missing_field")
    cross = await client.post(
        "/api/threads", json={"client_id": "c" * 16, "text": "x"}, headers={"origin": "http://evil.example"}
    )
    assert (cross.status_code, cross.json()["error"]) == (403, "cross_origin")
    big = await client.post("/api/files", files={"file": ("big.bin", b"x" * 2048)})
    assert (big.status_code, big.json()["error"]) == (413, "file_too_large")


async def test_a_send_is_stored_once_even_when_the_browser_retries(
    client: httpx.AsyncClient, redis: Redis, keys: Keys
) -> None:
    await signed_in(client)
    body = {"client_id": "retry-id-0001", "text": "-status"}
    first = await client.post("/api/threads", json=body)
    second = await client.post("/api/threads", json=body)
    assert first.status_code == second.status_code == 200
    assert first.json()["thread"] == second.json()["thread"]
    [event] = await inbound_events(redis, keys)
    assert (event.platform, event.text, event.actor.id, event.is_direct) == ("web", "/status", "alice", True)
    assert event.root_message_id == first.json()["thread"]
    listed = (await client.get("/api/threads")).json()["threads"]
    assert [t["title"] for t in listed] == ["-status"]


async def test_codex_posts_reach_the_thread_and_attachments_reach_the_workspace(
    client: httpx.AsyncClient, redis: Redis, keys: Keys, tmp_path: Path
) -> None:
    await signed_in(client)
    uploaded = (await client.post("/api/files", files={"file": ("n.txt", b"note-body")})).json()["file"]
    sent = await client.post(
        "/api/threads", json={"client_id": "with-file-01", "text": "hi", "file_ids": [uploaded["id"]]}
    )
    root = sent.json()["thread"]
    [event] = await inbound_events(redis, keys)
    threads, files = (
        ThreadStore(redis, keys),
        FileStore(redis, keys, web_root=tmp_path / "web", sessions_root=tmp_path / "sessions"),
    )
    platform = WebPlatform(threads, files, outbox_root=tmp_path / "outbox", max_file_bytes=1024)
    executor = OutboundExecutor(platform, redis, keys, LiveViews(platform, redis, keys))

    def action(payload: object, action_id: str) -> Delivery:
        a = OutboundAction(
            action_id=action_id, platform="web", conversation_id="chat", root_message_id=root, payload=payload
        )  # type: ignore[arg-type]
        return Delivery(stream="s", entry_id="1-0", data=encode(a))

    await executor.handle(action(PostPayload(text="**done**"), "p1"))
    await executor.handle(action(PostPayload(text="**done**"), "p1"))  # redelivered
    messages = (await client.get(f"/api/threads/{root}")).json()["messages"]
    assert [m["html"].strip() for m in messages if m["author"]["bot"]] == ["<p><strong>done</strong></p>"]

    dest = session_workspace(tmp_path, event.session_key) / ".attachments" / "m1"
    got = await platform.download(
        Target("chat", root),
        DownloadPayload(attachments=event.attachments, dest_dir=str(dest)),
    )
    saved = Path(got.saved[0].local_path or "")
    assert not got.errors and await asyncio.to_thread(saved.read_bytes) == b"note-body"


@pytest.mark.parametrize("path", ["/api/events", "/api/files/" + "0" * 32])
async def test_the_feed_and_files_need_a_sign_in(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert (response.status_code, response.json()["error"]) == (401, "sign_in_required")


async def test_ups_one_time_code_signs_in_once(client: httpx.AsyncClient, redis: Redis, keys: Keys) -> None:
    await redis.set(keys.admin_login_code(auth.code_sha256("one-time-code")), "1", ex=60)
    first = await client.post("/api/login", json={"name": "ann", "code": "one-time-code"})
    assert first.status_code == 200 and auth.COOKIE_NAME in first.cookies
    client.cookies.clear()
    again = await client.post("/api/login", json={"name": "ann", "code": "one-time-code"})
    assert again.status_code == 401 and again.json()["error"] == "bad_code"
