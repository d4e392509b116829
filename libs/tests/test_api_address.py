"""The API address sealed sessions get: private names pinned to their address (DNS faked at the edge)."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from codex_broker.libs import api_address


def resolving_to(address: str) -> Any:
    def fake(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    return fake


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api_address, "_pinned", {})


def test_literals_and_localhost_are_kept() -> None:
    for url in ("http://127.0.0.42:3000", "http://[::1]:3000", "http://localhost:3000", "http://10.0.0.5"):
        assert api_address.pinned_api_base(url) == url


def test_a_private_name_becomes_its_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", resolving_to("10.96.0.12"))
    assert api_address.pinned_api_base("http://http-api:3000") == "http://10.96.0.12:3000"
    monkeypatch.setattr(socket, "getaddrinfo", resolving_to("fd00::12"))
    assert api_address.pinned_api_base("http://api6:3000/") == "http://[fd00::12]:3000/"


def test_a_public_name_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", resolving_to("140.82.112.3"))
    assert api_address.pinned_api_base("https://broker.example.com") == "https://broker.example.com"


def test_a_failed_lookup_keeps_the_name_and_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror("not yet")

    monkeypatch.setattr(socket, "getaddrinfo", failing)
    assert api_address.pinned_api_base("http://http-api:3000") == "http://http-api:3000"
    monkeypatch.setattr(socket, "getaddrinfo", resolving_to("172.30.0.10"))
    assert api_address.pinned_api_base("http://http-api:3000") == "http://172.30.0.10:3000"
