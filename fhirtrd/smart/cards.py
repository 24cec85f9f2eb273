"""The `links` entry of a CDS Hooks card that opens the SMART app on the finding the card is about."""

from __future__ import annotations

import json
from typing import Any


def smart_link(public_url: str, disorder: str, finding: str | None = None,
               label: str = "Open the treatment-resistance timeline") -> dict[str, Any]:
    """A CDS Hooks 2.0 Link of type `smart`: the EHR launches `url` and hands `appContext` to the app
    in the token response (the app shows which disorder and finding it was opened for)."""
    context: dict[str, str] = {"disorder": disorder}
    if finding:
        context["finding"] = finding
    return {"label": label, "url": public_url.rstrip("/") + "/smart/launch", "type": "smart",
            "appContext": json.dumps(context, separators=(",", ":"))}
