"""The address people open for the web chat: computed in one place, because ingress-web serves
it and the http-api's admin page links to it."""

from __future__ import annotations

WILDCARDS = ("0.0.0.0", "::")


def chat_url(public_url: str | None, host: str, port: int) -> str:
    """WEB_PUBLIC_URL when set; else the bind address, loopback for a wildcard bind."""
    shown = "127.0.0.1" if host in WILDCARDS else host
    return public_url or f"http://{shown}:{port}/"
