"""Web API calls reuse a kept-alive connection instead of opening one per call."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from codex_broker.ingress_slack.api import api_session, make_web_client
from tests.fakes.fake_slack import FakeSlack


class PeerSlack(FakeSlack):
    """The fake Slack, noting the client port of every Web API request."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.peers: list[int] = []

    async def _api(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.peers.append(int(peer[1]) if peer else 0)
        return await super()._api(request)


async def test_calls_through_one_session_share_a_connection() -> None:
    with PeerSlack() as slack:
        async with api_session(10) as session:
            client = make_web_client(slack.bot_token, slack.api_url, timeout_s=10, session=session)
            for _ in range(3):
                assert (await client.auth_test())["ok"]
        assert len(slack.peers) == 3 and len(set(slack.peers)) == 1, slack.peers

        # without a session slack_sdk opens a new connection for every call
        client = make_web_client(slack.bot_token, slack.api_url, timeout_s=10)
        for _ in range(2):
            await client.auth_test()
        assert len(set(slack.peers[3:])) == 2
