"""WORKSPACE_HOME_CHANNELS, parsed once for every service that reads it: the orchestrator routes
a home channel's messages to its operator session, and an ingress forwards every message of a
home channel (mention or not) so that it can."""

from __future__ import annotations

from collections.abc import Iterable


def parse_homes(entries: Iterable[str]) -> frozenset[tuple[str, str]]:
    """`slack:C123,discord:456` (already split at commas) → {("slack", "C123"), ("discord",
    "456")}; the platform is any name an ingress uses, so a new platform needs only its entry."""
    homes = set()
    for entry in entries:
        platform, sep, conversation = entry.strip().partition(":")
        if not sep or not platform or not conversation:
            raise ValueError(f"WORKSPACE_HOME_CHANNELS entry {entry!r} is not <platform>:<channel id>")
        homes.add((platform, conversation))
    return frozenset(homes)


def homes_of(platform: str, entries: Iterable[str]) -> frozenset[str]:
    """The home channel ids of one platform."""
    return frozenset(conversation for name, conversation in parse_homes(entries) if name == platform)
