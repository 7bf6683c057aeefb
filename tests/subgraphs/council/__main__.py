"""`python -m tests.subgraphs.council`: serve the council subgraph, or print its SDL."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn

from tests.subgraphs.council.app import Council, create_app, export_sdl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sdl", action="store_true", help="print the subgraph's SDL and exit")
    parser.add_argument("--cases", type=Path, help="the council's cases (JSON)")
    parser.add_argument("--hub", default="http://127.0.0.1:8000", help="the hub's base URL")
    parser.add_argument("--audience", default="safeguarding-hub")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4001)
    args = parser.parse_args()
    if args.sdl:
        sys.stdout.write(export_sdl())
        return
    council = Council.from_file(
        args.cases,
        jwks_url=f"{args.hub}/.well-known/jwks.json",
        issuer=args.hub,
        audience=args.audience,
    )
    uvicorn.run(create_app(council), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
