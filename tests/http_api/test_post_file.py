"""post-file: sources, size rules, and the path tricks that must never reach a host file."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import httpx
import pytest

from codex_broker.http_api.config import Settings
from tests.http_api.conftest import Session
from tests.http_api.support import Responder


async def post(client: httpx.AsyncClient, session: Session, **body: object) -> httpx.Response:
    return await client.post("/chat/post-file", json=session.body(**body), headers=session.headers)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, {"error": "provide_exactly_one_file_source"}),
        ({"filePath": "a.txt", "contentBase64": "YQ=="}, {"error": "provide_exactly_one_file_source"}),
        ({"content_base64": "YQ=="}, {"error": "missing_required_body", "field": "filename"}),
        (
            {"contentBase64": "***", "filename": "a"},
            {"error": "invalid_content_base64", "field": "contentBase64"},
        ),
        ({"content_base64": "", "file_path": ""}, {"error": "provide_exactly_one_file_source"}),
        (
            {"contentBase64": "YQ", "filename": "a"},
            {"error": "invalid_content_base64", "field": "contentBase64"},
        ),
        (
            {"contentBase64": "====", "filename": "a"},
            {"error": "invalid_content_base64", "field": "contentBase64"},
        ),
    ],
)
async def test_source_validation(
    client: httpx.AsyncClient, session: Session, body: dict, expected: dict
) -> None:
    response = await post(client, session, **body)
    assert response.status_code == 400
    got = response.json()
    assert {k: got[k] for k in expected} == expected


async def test_inline_upload(client: httpx.AsyncClient, session: Session, responder: Responder) -> None:
    content = b"hello file"
    response = await post(
        client,
        session,
        contentBase64=base64.b64encode(content).decode(),
        filename="../../notes.txt",
        initial_comment="see *this*",
        title="Notes",
    )
    assert response.status_code == 200, response.text
    upload = responder.actions[-1].payload
    assert upload.kind == "upload"
    assert (upload.filename, upload.initial_comment, upload.title) == (
        "../../notes.txt",
        "see *this*",
        "Notes",
    )
    assert upload.path is not None and Path(upload.path).name == "notes.txt" and "outbox" in upload.path
    assert responder.uploads == [content]
    assert not Path(upload.path).exists()  # noqa: ASYNC240 - removed once the ingress answered


async def test_path_inside_workspace_and_roots(
    client: httpx.AsyncClient, session: Session, responder: Responder, api_settings: Settings
) -> None:
    (session.workspace / "out").mkdir()
    (session.workspace / "out" / "report.txt").write_bytes(b"report")
    relative = await post(client, session, filePath="out/report.txt")
    assert relative.status_code == 200, relative.text
    absolute = await post(client, session, file_path=str(session.workspace / "out" / "report.txt"), text="c")
    assert absolute.status_code == 200
    assert responder.actions[-1].payload.initial_comment == "c"
    repos = Path(api_settings.data_root) / "repos" / "proj"
    repos.mkdir(parents=True)
    (repos / "README.md").write_text("readme")
    assert (await post(client, session, filePath=str(repos / "README.md"))).status_code == 200
    extra = api_settings.allowed_file_roots[0] / "shared.txt"
    extra.write_text("shared")
    assert (await post(client, session, filePath=str(extra))).status_code == 200
    inside_link = session.workspace / "link.txt"
    inside_link.symlink_to(session.workspace / "out" / "report.txt")
    assert (await post(client, session, filePath="link.txt")).status_code == 200
    assert responder.uploads == [b"report", b"report", b"readme", b"shared", b"report"]


async def test_path_tricks_are_refused(
    client: httpx.AsyncClient, session: Session, feishu_session: Session, responder: Responder, tmp_path: Path
) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("TOP SECRET")
    (session.workspace / "escape.txt").symlink_to(outside)
    (session.workspace / "etc").symlink_to("/etc")
    (session.workspace / "dangling").symlink_to(tmp_path / "missing-target")
    os.mkfifo(session.workspace / "fifo")
    (session.workspace / "dir").mkdir()
    other_file = feishu_session.workspace / "theirs.txt"
    other_file.write_text("another session")
    cases = {
        "../../../../../../etc/passwd": "path_not_allowed",
        "/etc/passwd": "path_not_allowed",
        str(outside): "path_not_allowed",
        "escape.txt": "path_not_allowed",
        "etc/passwd": "path_not_allowed",
        "dangling": "path_not_allowed",
        str(other_file): "path_not_allowed",
        "/proc/self/environ": "path_not_allowed",
        str(session.workspace) + "/../" + session.workspace.name + "/../../": "path_not_allowed",
        "nothing-here.txt": "file_not_found",
        "fifo": "not_a_regular_file",
        "dir": "not_a_regular_file",
        "a\x00b": "path_not_allowed",
    }
    for raw, code in cases.items():
        response = await post(client, session, filePath=raw)
        assert (response.status_code, response.json().get("error")) == (400, code), raw
        assert response.json().get("field") == "filePath"
    assert responder.uploads == []


async def test_symlink_swapped_after_check_is_refused(session: Session, tmp_path: Path) -> None:
    from codex_broker.http_api import files
    from codex_broker.http_api.errors import ApiError

    target = session.workspace / "swap.txt"
    target.write_text("fine")
    real = files.resolve_allowed("swap.txt", session.workspace, [session.workspace])
    target.unlink()
    target.symlink_to(tmp_path)  # swapped for a symlink between the check and the open
    with pytest.raises(ApiError) as raised:
        files.open_allowed(real, [session.workspace])
    assert raised.value.code in ("file_not_readable", "path_not_allowed")


async def test_size_rules(
    client: httpx.AsyncClient, session: Session, feishu_session: Session, responder: Responder
) -> None:
    # test settings: Slack max 5000 B; Feishu images ≤ 1000 B as images, files ≤ 3000 B
    (session.workspace / "big.bin").write_bytes(b"x" * 5001)
    assert (await post(client, session, filePath="big.bin")).json()["error"] == "file_too_large"
    (session.workspace / "empty.txt").write_bytes(b"")
    assert (await post(client, session, filePath="empty.txt")).json()["error"] == "empty_file"
    (feishu_session.workspace / "pic.png").write_bytes(b"p" * 2000)
    as_file = await post(client, feishu_session, filePath="pic.png")
    assert as_file.status_code == 200  # over the image limit, within the file limit
    (feishu_session.workspace / "huge.png").write_bytes(b"p" * 3001)
    too_big = await post(client, feishu_session, filePath="huge.png")
    assert (too_big.status_code, too_big.json()["error"]) == (400, "file_too_large")
    inline = base64.b64encode(b"z" * 3001).decode()
    assert (await post(client, feishu_session, contentBase64=inline, filename="a.zip")).json()["error"] == (
        "file_too_large"
    )


async def test_legacy_slack_post_file_form(
    client: httpx.AsyncClient, session: Session, responder: Responder
) -> None:
    form = {
        "channel_id": "C1",
        "thread_ts": "111.222",
        "content_base64": base64.b64encode(b"abc").decode(),
        "filename": "a.txt",
    }
    response = await client.post("/slack/post-file", data=form, headers=session.headers)
    assert response.status_code == 200, response.text
    assert responder.uploads == [b"abc"]
