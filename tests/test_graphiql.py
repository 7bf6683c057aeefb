"""GraphiQL works without the internet: the page loads only the hub's own copies of its assets
(issue 17), and headless Chromium, with every host but loopback unresolvable, draws the editor."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer
from tests.test_dashboard import _run

PAGE_HEADERS = {"Accept": "text/html"}
REFERENCE = re.compile(r"""<(?:script|link)\b[^>]*?\b(?:src|href)="([^"]+)"[^>]*>""", re.DOTALL)
INTEGRITY = re.compile(r'integrity="(sha384-[^"]+)"')
MEDIA = {".js": "text/javascript", ".css": "text/css"}
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


async def _page(http: httpx.AsyncClient, server: LiveServer) -> httpx.Response:
    # No token: the page carries no data (hub/app.py `Authenticated._is_graphiql_page`).
    response = await http.get(server.graphql_url, headers=PAGE_HEADERS)
    assert response.status_code == 200, response.text
    return response


def _assets(html: str) -> list[tuple[str, str]]:
    """Each script or stylesheet the page loads (not its inline icon), with its SRI hash."""
    found = []
    for tag in REFERENCE.finditer(html):
        integrity = INTEGRITY.search(tag.group(0))
        if not tag.group(1).startswith("data:"):
            found.append((tag.group(1), integrity.group(1) if integrity else ""))
    assert len(found) == 7, found  # React, ReactDOM, js-cookie, GraphiQL x2, the explorer x2
    return found


async def test_the_page_names_no_other_host(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    response = await _page(http, live_server)
    addresses = re.findall(r"""\b(?:src|href)\s*=\s*["']([^"']*)""", response.text)
    assert [a for a in addresses if not a.startswith(("/", "data:"))] == []
    assert "unpkg.com" not in response.text
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self' 'sha256-" in csp
    assert "unsafe-eval" not in csp


async def test_every_asset_is_served_as_the_page_expects(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    response = await _page(http, live_server)
    for address, integrity in _assets(response.text):
        asset = await http.get(f"{live_server.url}{address}")  # no token: no data in it
        assert asset.status_code == 200, address
        media = asset.headers["content-type"].split(";")[0]
        assert media == MEDIA[Path(address).suffix], (address, media)
        assert "immutable" in asset.headers["cache-control"], address
        assert asset.headers["x-content-type-options"] == "nosniff"
        # The same bytes unpkg serves: the page's SRI hash (strawberry's) still holds.
        digest = base64.b64encode(hashlib.sha384(asset.content).digest()).decode()
        assert integrity == f"sha384-{digest}", address


@pytest.mark.parametrize(
    "path",
    [
        "/graphiql/static/graphiql-3.8.3/LICENSE",
        "/graphiql/static/graphiql-3.8.3/..%2F..%2Fviews.py",
        "/graphiql/static/react-18.2.0/react.development.js",
    ],
)
async def test_only_the_pages_assets_are_served(
    http: httpx.AsyncClient, live_server: LiveServer, path: str
) -> None:
    assert (await http.get(f"{live_server.url}{path}")).status_code == 404


async def test_graphiql_draws_its_editor_offline(live_server: LiveServer, tmp_path: Path) -> None:
    dom = _run([OFFLINE, "--dump-dom", live_server.graphql_url], tmp_path / "profile")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Loading..." not in dom.stdout, dom.stdout[-2000:]
    assert "graphiql-query-editor" in dom.stdout
    assert "CodeMirror" in dom.stdout
    # Its schema request went through the page's policy to the hub, which wants a token.
    assert "UNAUTHENTICATED" in dom.stdout
