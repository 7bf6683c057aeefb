"""GraphiQL's page and its assets, served by the hub: no public CDN, so it works offline.

strawberry's page loads React, GraphiQL and its explorer plugin from unpkg; on a machine without
the internet it stays on "Loading...". The same files, byte for byte (their SRI hashes in the page
still hold), live in `static/` (see its README) and the page is rewritten to load them from here.
The assets carry no data, so they need no token; they are versioned by folder, so they are cached
for a year. The page allows only its own inline script (by hash), these assets, and calls to the
hub itself.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from strawberry.http.ides import get_graphql_ide_html

STATIC = Path(__file__).parent / "static"
PREFIX = "/graphiql/static"

UNPKG = "https://unpkg.com/"
# A file as strawberry's page names it on unpkg -> the folder here (package and version).
FOLDERS = {
    "react@18.2.0/umd/react.production.min.js": "react-18.2.0",
    "react-dom@18.2.0/umd/react-dom.production.min.js": "react-dom-18.2.0",
    "js-cookie@3.0.5/dist/js.cookie.min.js": "js-cookie-3.0.5",
    "graphiql@3.8.3/graphiql.min.css": "graphiql-3.8.3",
    "graphiql@3.8.3/graphiql.min.js": "graphiql-3.8.3",
    "@graphiql/plugin-explorer@1.0.2/dist/style.css": "graphiql-plugin-explorer-1.0.2",
    "@graphiql/plugin-explorer@1.0.2/dist/index.umd.js": "graphiql-plugin-explorer-1.0.2",
}
ASSETS = {UNPKG + path: f"{folder}/{path.rsplit('/', 1)[1]}" for path, folder in FOLDERS.items()}
MEDIA = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']https?://""")
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


class UnknownGraphiQLPage(RuntimeError):
    """strawberry's page names an asset the hub does not carry (strawberry was upgraded)."""


@cache
def page() -> tuple[str, str]:
    """The page with local addresses, and its Content-Security-Policy."""
    html = get_graphql_ide_html("graphiql")
    for remote, local in ASSETS.items():
        html = html.replace(remote, f"{PREFIX}/{local}")
    if EXTERNAL.search(html):
        # Fail at start-up, not as a page that hangs on "Loading..." offline.
        msg = "strawberry's GraphiQL page loads an asset from the internet: update hub/graphiql"
        raise UnknownGraphiQLPage(msg)
    hashes = " ".join(f"'sha256-{_sha256(script)}'" for script in INLINE_SCRIPT.findall(html))
    csp = (
        f"default-src 'none'; script-src 'self' {hashes}; "
        # GraphiQL's editor and React set style attributes and inject <style> as they draw.
        "style-src 'self' 'unsafe-inline'; font-src data:; img-src 'self' data:; "
        "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
    return html, csp


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def page_response() -> Response:
    html, csp = page()
    headers = {
        "Content-Security-Policy": csp,
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }
    return HTMLResponse(html, headers=headers)


async def asset(request: Request) -> Response:
    # Only the files named above: a path from the request never reaches the filesystem.
    name = f"{request.path_params['package']}/{request.path_params['file']}"
    if name not in ASSETS.values():
        return Response(status_code=404)
    return Response(
        _content(name),
        media_type=MEDIA[Path(name).suffix],
        headers={
            "Cache-Control": "public, max-age=31536000, immutable",
            "Content-Security-Policy": "default-src 'none'",
            "X-Content-Type-Options": "nosniff",
        },
    )


@cache
def _content(name: str) -> bytes:
    return (STATIC / name).read_bytes()


def routes() -> list[Route]:
    return [Route(f"{PREFIX}/{{package}}/{{file}}", asset)]
