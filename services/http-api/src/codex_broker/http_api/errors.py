"""One error shape for every route: `{ok: false, error: <code>, field?, allowed?}`.

Handlers raise `ApiError`; Starlette's own 404/405 and our 413 come out in the same shape. An
unexpected exception is a bug, not bad input: it is logged and answered 500 `internal_error`
without detail, and the test suite (schemathesis included) holds that no input reaches it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        field: str | None = None,
        allowed: Sequence[str] | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.field = field
        self.allowed = list(allowed) if allowed is not None else None
        self.detail = detail

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error": self.code}
        if self.field is not None:
            body["field"] = self.field
        if self.allowed is not None:
            body["allowed"] = self.allowed
        if self.detail is not None:
            body["detail"] = self.detail
        return body


def error_response(error: ApiError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    request.state.error_code = exc.code
    return error_response(exc)


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    request.state.error_code = code
    return error_response(ApiError(exc.status_code, code), headers=exc.headers)


async def internal_error_handler(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", extra={"path": request.url.path, "method": request.method}, exc_info=exc)
    return error_response(ApiError(500, "internal_error"))


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ApiError: api_error_handler,
    HTTPException: http_exception_handler,
    Exception: internal_error_handler,
}
