"""The HTTP door's read-only view of a FHIR server, on the sync's client (fhirtrd.server.client).

The client does the requests, paging and error mapping; this module adds what a request of the
door needs on top: a page limit, never following a link off the server it was given (the
allowlist is checked on that server, not on where its links point), no retries (an EHR waits for
the answer), and the door's own errors (404, 502) for the client's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from fhirtrd.api.errors import NotFound, UpstreamError
from fhirtrd.server.auth import BearerToken
from fhirtrd.server.client import FhirClient, RetryPolicy, bundle_resources
from fhirtrd.server.errors import NotFound as ServerNotFound
from fhirtrd.server.errors import ServerError

# One patient's data for the classifier: (resource type, search parameter naming the patient).
PATIENT_SEARCHES: tuple[tuple[str, str], ...] = (
    ("Condition", "patient"),
    ("MedicationRequest", "patient"),
    ("MedicationStatement", "patient"),
    ("MedicationDispense", "patient"),
    ("MedicationAdministration", "patient"),
    ("Observation", "patient"),
    ("Procedure", "patient"),
    ("AllergyIntolerance", "patient"),
)


def normalize_base(url: str) -> str:
    return url.strip().rstrip("/")


class FhirFetcher:
    """Reads from one FHIR server base URL with an optional bearer token."""

    def __init__(
        self,
        session: requests.Session,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        max_pages: int = 50,
    ) -> None:
        self.base = normalize_base(base_url)
        self._origin = urlsplit(self.base + "/")
        self._max_pages = max_pages
        try:
            self._client: FhirClient | None = FhirClient(
                self.base, auth=BearerToken(token) if token else None, session=session,
                timeout=timeout, retry=RetryPolicy(backoff=()))
        except ServerError as exc:
            self._client, self._refused = None, str(exc)

    def _same_server(self, url: str) -> bool:
        parts = urlsplit(url)
        base_path = self._origin.path.rstrip("/")
        return (parts.scheme, parts.netloc) == (self._origin.scheme, self._origin.netloc) and (
            parts.path == base_path or parts.path.startswith(base_path + "/")
        )

    def _on_client(self) -> FhirClient:
        if self._client is None:
            raise UpstreamError(self._refused)
        return self._client

    def get(self, relative: str) -> dict[str, Any]:
        """GET `relative` (e.g. "Patient/1" or "Condition?patient=1") on this server."""
        client = self._on_client()
        try:
            return client.get(relative.lstrip("/"))
        except ServerNotFound as exc:
            raise NotFound(str(exc)) from exc
        except ServerError as exc:
            raise UpstreamError(str(exc)) from exc

    def _pages(self, first: str, what: str) -> Iterator[dict[str, Any]]:
        """The Bundles of a search from `first`, each next link checked before it is followed."""
        client = self._on_client()
        count = 0
        try:
            for page in client.pages(first):
                count += 1
                yield page
                more = next((link.get("url") for link in page.get("link") or []
                             if isinstance(link, dict) and link.get("relation") == "next"), None)
                if not isinstance(more, str) or not more:
                    return
                url = urljoin(self.base + "/", more)
                if not self._same_server(url):
                    raise UpstreamError(f"{what}: the next link {url} is not on {self.base}")
                if count >= self._max_pages:
                    raise UpstreamError(f"{what} has more than {self._max_pages} pages")
        except ServerNotFound as exc:
            raise NotFound(str(exc)) from exc
        except ServerError as exc:
            raise UpstreamError(f"{what}: {exc}") from exc

    def search(self, relative: str) -> list[dict[str, Any]]:
        """Every resource of a search, following `next` links on this server up to the page limit."""
        return [r for page in self._pages(relative.lstrip("/"), f"search {relative}")
                for r in bundle_resources(page)]

    def continue_search(self, url: str) -> list[dict[str, Any]]:
        """The resources of a search's further pages, from the `next` link `url` on this server."""
        url = urljoin(self.base + "/", url)
        if not self._same_server(url):
            raise UpstreamError(f"the next link {url} is not on {self.base}")
        return [r for page in self._pages(url, "the further pages") for r in bundle_resources(page)]

    def patient_data(
        self, patient_id: str, searches: Iterable[tuple[str, str]] = PATIENT_SEARCHES
    ) -> list[dict[str, Any]]:
        """The Patient and everything the classifier reads about them; 404 when no such patient."""
        resources = [self.get(f"Patient/{patient_id}")]
        for resource_type, param in searches:
            resources.extend(self.search(f"{resource_type}?{param}={patient_id}&_count=200"))
        return resources
