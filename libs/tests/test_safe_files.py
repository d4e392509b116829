"""libs.safe_files: writes below a root that an untrusted shell also writes."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from codex_broker.libs.safe_files import UnsafePath, open_dir, relative_parts, write_file


def test_relative_parts_is_lexical_and_stays_below_the_root(tmp_path: Path) -> None:
    assert relative_parts(tmp_path, tmp_path / "a" / "b") == ("a", "b")
    assert relative_parts(tmp_path, tmp_path / "a" / ".." / "b") == ("b",)
    for bad in (tmp_path / ".." / "x", Path("/etc"), Path("relative")):
        with pytest.raises(UnsafePath):
            relative_parts(tmp_path, bad)


def test_missing_directories_are_created_private_and_the_file_lands(tmp_path: Path) -> None:
    path = write_file(tmp_path / "root", tmp_path / "root" / "a" / "b", "f.txt", b"data")
    assert path == tmp_path / "root" / "a" / "b" / "f.txt" and path.read_bytes() == b"data"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_symlinked_component_is_refused_even_when_it_points_inside(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    (tmp_path / "file").write_text("x")
    for target in (tmp_path / "link", tmp_path / "link" / "deeper", tmp_path / "file" / "x"):
        with pytest.raises(UnsafePath):
            write_file(tmp_path, target, "f", b"data")
    assert list((tmp_path / "real").iterdir()) == []


def test_a_symlink_at_the_name_is_replaced_and_a_directory_there_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").symlink_to(victim)
    (tmp_path / "d" / "sub").mkdir()
    assert write_file(tmp_path, tmp_path / "d", "f", b"new").read_bytes() == b"new"
    assert victim.read_bytes() == b"keep" and not (tmp_path / "d" / "f").is_symlink()
    with pytest.raises(UnsafePath):
        write_file(tmp_path, tmp_path / "d", "sub", b"x")
    with pytest.raises(UnsafePath), open_dir(tmp_path, tmp_path / "d") as directory:
        directory.write("../escape", b"x")
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["f", "sub"]
