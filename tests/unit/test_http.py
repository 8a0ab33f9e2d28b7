import asyncio
import gzip
from pathlib import Path

import pytest
from aiohttp import web

from mirror import __version__
from mirror._config import parse
from mirror._http import ACCEPT, Page, Upstream, user_agent
from mirror.errors import UpstreamError


def test_user_agent_names_tool_version_and_contact() -> None:
    agent = user_agent("ops@example.org")
    assert agent.startswith(f"mirror/{__version__} ")
    assert "ops@example.org" in agent
    assert "; )" not in user_agent("")


def test_accept_prefers_json_with_q_values() -> None:
    kinds = [part.strip() for part in ACCEPT.split(",")]
    assert kinds[0] == "application/vnd.pypi.simple.v1+json"
    assert kinds[1].endswith(";q=0.2") and kinds[2] == "text/html;q=0.01"


def test_a_header_sent_twice_reads_as_httpx_read_it(tmp_path: Path) -> None:
    """Both values, joined: a body gzipped twice is refused (one encoding at most), never decoded once."""
    body = b'{"meta": {"api-version": "1.1"}, "name": "demo", "files": []}'

    async def page(request: web.Request) -> web.Response:
        response = web.Response(body=gzip.compress(gzip.compress(body)))
        response.headers["Content-Type"] = "application/vnd.pypi.simple.v1+json"
        for header, value in (("Content-Encoding", "gzip"), ("Content-Encoding", "gzip"), ("ETag", '"a"')):
            response.headers.add(header, value)
        return response

    async def main() -> Page | None:
        app = web.Application()
        app.router.add_get("/simple/demo/", page)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        url = f"http://127.0.0.1:{port}/simple/"
        try:
            config = parse({"mirror": {"directory": str(tmp_path), "upstream": url, "retries": 0}}, tmp_path / "m.toml")
            async with Upstream(config) as upstream:
                return await upstream.get_page(f"{url}demo/")
        finally:
            await runner.cleanup()

    with pytest.raises(UpstreamError, match="unsupported Content-Encoding 'gzip, gzip'"):
        asyncio.run(main())
