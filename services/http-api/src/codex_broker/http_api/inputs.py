"""Request input as one flat dict: the query string merged with a JSON object or a form body.

The parsed input is kept on `request.state.input` so that the request log can write a
redacted copy of it.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from codex_broker.http_api.errors import ApiError

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def read_input(request: Request, *, max_part_bytes: int) -> dict[str, Any]:
    data: dict[str, Any] = dict(request.query_params)
    if request.method in ("POST", "PUT", "PATCH"):
        data.update(await _read_body(request, max_part_bytes))
    request.state.input = data
    return data


async def _read_body(request: Request, max_part_bytes: int) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in FORM_TYPES:
        return await _read_form(request, max_part_bytes)
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, "invalid_json_body") from None
    if not isinstance(value, dict):
        raise ApiError(400, "invalid_json_body")
    return value


async def _read_form(request: Request, max_part_bytes: int) -> dict[str, Any]:
    try:
        form = await request.form(max_files=0, max_fields=200, max_part_size=max_part_bytes)
    except HTTPException:  # malformed multipart, too many fields, a file part
        raise ApiError(400, "invalid_form_body") from None
    try:
        data: dict[str, Any] = {}
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                raise ApiError(400, "invalid_form_body", field=key)
            data[key] = value
        return data
    finally:
        await form.close()
