"""`fhirtrd serve`: the development server (production runs the same app under gunicorn)."""

from __future__ import annotations

import argparse
from typing import IO, Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `serve` on the CLI's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run the HTTP service (REST + CDS Hooks) with the development server",
        description="Run the HTTP service with Flask's development server. Settings come from "
        "the file named by FHIRTRD_CONFIG and FHIRTRD_* variables (docs/service.md). For "
        "production: gunicorn -c docker/gunicorn.conf.py 'fhirtrd.api:create_app()'.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    parser.add_argument("--debug", action="store_true", help="Flask debug mode (never in production)")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace, stdout: IO[str], stderr: IO[str]) -> int:
    from fhirtrd.api import create_app
    from fhirtrd.api.errors import ConfigError

    try:
        app = create_app()
    except ConfigError as exc:
        stderr.write(f"fhirtrd serve: {exc}\n")
        return 2
    app.run(host=args.host, port=args.port, debug=args.debug, use_reloader=False)
    return 0
