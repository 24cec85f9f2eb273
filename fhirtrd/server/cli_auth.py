"""The authentication options every server command shares (`sync`, `export`, `population-sync`; docs/sync.md)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_auth_options(p: argparse.ArgumentParser, scope: str) -> None:
    """--auth and its settings; `build_auth` in fhirtrd.server.cli_sync turns them into an Auth."""
    auth = p.add_argument_group("authentication (docs/sync.md)")
    auth.add_argument("--auth", choices=("none", "bearer", "smart", "client-secret"), default="none")
    auth.add_argument("--token-env", default="FHIRTRD_TOKEN", metavar="VAR",
                      help="--auth bearer: environment variable holding the token (default FHIRTRD_TOKEN)")
    auth.add_argument("--client-id", help="--auth smart / client-secret: the registered client id")
    auth.add_argument("--key", type=Path, help="--auth smart: private key, PEM or JWK file")
    auth.add_argument("--kid", help="--auth smart: key id (default: from the JWK, or its thumbprint)")
    auth.add_argument("--token-url", help="token endpoint (default: from .well-known/smart-configuration)")
    auth.add_argument("--scope", default=scope, help=f"scopes to request (default {scope!r})")
    auth.add_argument("--client-secret-env", default="FHIRTRD_CLIENT_SECRET", metavar="VAR",
                      help="--auth client-secret: environment variable holding the secret")
    auth.add_argument("--client-auth", choices=("basic", "post"), default="basic",
                      help="--auth client-secret: client_secret_basic or client_secret_post")
