"""The ingress kit's download loop and file checks, with a platform fetch that streams chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from codex_broker.libs.bus import DeadLetter
from codex_broker.libs.contracts import Attachment, DownloadPayload, UploadPayload
from codex_broker.libs.ingress_kit import files

HOSTS = frozenset({"files.example", "127.0.0.1:9000"})


class Transient(Exception):
    pass


class Gone(Exception):
    pass


def permanent(exc: Exception) -> str | None:
    return "file_not_found" if isinstance(exc, Gone) else None


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def attachment(name: str, url: str = "https://files.example/f", **fields: object) -> Attachment:
    return Attachment(id=name, name=name, url=url, **fields)  # type: ignore[arg-type]


async def test_the_loop_saves_refuses_and_reports_each_file(tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    dest = sessions / "s1" / "workspace" / ".attachments" / "m1"
    dest.mkdir(parents=True)
    bodies = {"a.png": [b"png"], "big.bin": [b"x" * 6, b"x" * 6], "gone.txt": []}

    async def fetch(url: str, saver: files.Saver) -> int:
        name = saver.target.name.split("-", 1)[1]
        if name == "gone.txt":
            raise Gone()
        return await saver.save(chunks(*bodies[name]))

    payload = DownloadPayload(
        dest_dir=str(dest),
        attachments=[
            attachment("a.png", mimetype="image/png"),
            attachment("elsewhere", url="https://evil.example/f"),
            attachment("said-big", size=99),
            attachment("big.bin"),
            attachment("gone.txt"),
        ],
    )
    saved, errors = await files.download_all(
        payload, sessions_root=sessions, hosts=HOSTS, limit=10, fetch=fetch, permanent=permanent
    )
    assert [(a.id, a.size, a.is_image) for a in saved] == [("a.png", 3, True)]
    assert (dest / "00-a.png").read_bytes() == b"png"
    assert errors == {
        "elsewhere": "url_not_allowed",
        "said-big": "too_large",
        "big.bin": "too_large",
        "gone.txt": "file_not_found",
    }
    assert sorted(p.name for p in dest.iterdir()) == ["00-a.png"]  # nothing half-written is left


async def test_a_transient_error_propagates_for_a_retry(tmp_path: Path) -> None:
    async def fetch(url: str, saver: files.Saver) -> int:
        raise Transient()

    payload = DownloadPayload(dest_dir=str(tmp_path / "sessions" / "s"), attachments=[attachment("a")])
    with pytest.raises(Transient):
        await files.download_all(
            payload,
            sessions_root=tmp_path / "sessions",
            hosts=HOSTS,
            limit=10,
            fetch=fetch,
            permanent=permanent,
        )


async def test_a_symlink_planted_in_the_workspace_is_refused(tmp_path: Path) -> None:
    """Codex's shell writes the workspace too: a link where the download goes is never followed."""
    sessions = tmp_path / "sessions"
    (sessions / "s1" / "workspace").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (sessions / "s1" / "workspace" / ".attachments").symlink_to(outside, target_is_directory=True)

    async def fetch(url: str, saver: files.Saver) -> int:
        return await saver.save(chunks(b"data"))

    payload = DownloadPayload(
        dest_dir=str(sessions / "s1" / "workspace" / ".attachments"), attachments=[attachment("a")]
    )
    saved, errors = await files.download_all(
        payload, sessions_root=sessions, hosts=HOSTS, limit=10, fetch=fetch, permanent=permanent
    )
    assert saved == [] and errors == {"a": "unsafe_path"}
    assert list(outside.iterdir()) == []


def test_download_targets_stay_in_the_sessions_root(tmp_path: Path) -> None:
    target = files.download_target(str(tmp_path / "s" / "d"), tmp_path, attachment("../../etc/passwd"), 3)
    assert target == tmp_path / "s" / "d" / "03-passwd"
    with pytest.raises(DeadLetter):
        files.download_target("/etc", tmp_path, attachment("a"), 0)


def test_only_the_platforms_hosts_are_fetched() -> None:
    assert files.url_allowed("https://files.example/x", HOSTS)
    assert files.url_allowed("http://127.0.0.1:9000/x", HOSTS)  # a configured API host with its port
    assert not files.url_allowed("http://127.0.0.1:9001/x", HOSTS)
    assert not files.url_allowed("file:///etc/passwd", HOSTS)
    assert not files.url_allowed(None, HOSTS)


def test_an_upload_reads_only_inside_its_roots(tmp_path: Path) -> None:
    inside = tmp_path / "outbox" / "report.txt"
    inside.parent.mkdir()
    inside.write_text("hi")
    assert files.upload_source(UploadPayload(path=str(inside)), [tmp_path / "outbox"]) == (
        inside.resolve(),
        "report.txt",
    )
    with pytest.raises(DeadLetter):
        files.upload_source(UploadPayload(path="/etc/passwd"), [tmp_path / "outbox"])
    assert files.upload_source(UploadPayload(content_base64="aGk=", filename="a.txt"), []) == (b"hi", "a.txt")
    with pytest.raises(DeadLetter):
        files.upload_source(UploadPayload(content_base64="not base64!"), [])
