"""File rules: resource references, the 10 MB / 30 MB limits, file types; history paging."""

from __future__ import annotations

from codex_broker.ingress_feishu.normalize import select_history
from codex_broker.ingress_feishu.resources import (
    FILE_MAX_BYTES,
    IMAGE_MAX_BYTES,
    classify_upload,
    feishu_file_type,
    is_image_name,
    parse_resource_url,
    resource_url,
)


def test_resource_url_round_trip() -> None:
    ref = parse_resource_url(resource_url("om_1", "img_2", "image"))
    assert ref is not None and (ref.message_id, ref.file_key, ref.kind) == ("om_1", "img_2", "image")
    for bad in (
        None,
        "",
        "https://x/y",
        "feishu://message/om_1/resource/k?type=exe",
        "feishu://message/../x",
    ):
        assert parse_resource_url(bad) is None


def test_upload_limits() -> None:
    assert classify_upload(IMAGE_MAX_BYTES, is_image=True) == "image"
    assert classify_upload(IMAGE_MAX_BYTES + 1, is_image=True) == "file"
    assert classify_upload(FILE_MAX_BYTES, is_image=False) == "file"
    assert classify_upload(FILE_MAX_BYTES + 1, is_image=True) == "too_large"


def test_image_detection_and_file_types() -> None:
    assert is_image_name("a.PNG") and is_image_name("x", "image/jpeg")
    assert not is_image_name("a.svg", "image/svg+xml") and not is_image_name("a.txt")
    assert feishu_file_type("r.pdf") == "pdf" and feishu_file_type("x.tar.gz") == "stream"


def test_select_history_skips_to_before_and_filters_the_thread() -> None:
    newest_first = [
        {"message_id": "m5", "root_id": "r"},
        {"message_id": "m4", "root_id": "other"},
        {"message_id": "m3", "root_id": "r"},
        {"message_id": "m2", "root_id": "r", "deleted": True},
        {"message_id": "m1", "root_id": "r"},
        {"message_id": "r"},
    ]
    kept, passed = select_history(newest_first, before="m5", limit=10, root="r")
    assert passed and [m["message_id"] for m in kept] == ["m3", "m1", "r"]
    kept, passed = select_history(newest_first, before="missing", limit=10, root=None)
    assert not passed and kept == []
    kept, _ = select_history(newest_first, before=None, limit=2, root=None)
    assert [m["message_id"] for m in kept] == ["m5", "m4"]
