"""A minimal read-only FHIR client for the HTTP door: read, search with paging, one patient's data.

The sync area owns the full server client (retries, token renewal, writes); this one only reads
what a request needs, within a page limit, and never follows a link off the server it was given.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from fhirtrd.api.errors import NotFound, UpstreamError

FHIR_ACCEPT = "application/fhir+json"

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
        self._session = session
        self.base = normalize_base(base_url)
        self._origin = urlsplit(self.base + "/")
        self._headers = {"Accept": FHIR_ACCEPT}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._timeout = timeout
        self._max_pages = max_pages

    def _get(self, url: str) -> dict[str, Any]:
        try:
            response = self._session.get(url, headers=self._headers, timeout=self._timeout)
        except requests.RequestException as exc:
            raise UpstreamError(f"GET {url} failed: {exc.__class__.__name__}") from exc
        if response.status_code in (404, 410):
            raise NotFound(f"GET {url} -> HTTP {response.status_code}")
        if response.status_code >= 400:
            raise UpstreamError(f"GET {url} -> HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise UpstreamError(f"GET {url} -> HTTP {response.status_code}, not JSON") from exc
        if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
            raise UpstreamError(f"GET {url}: the answer is not a FHIR resource")
        return body

    def _same_server(self, url: str) -> bool:
        parts = urlsplit(url)
        base_path = self._origin.path.rstrip("/")
        return (parts.scheme, parts.netloc) == (self._origin.scheme, self._origin.netloc) and (
            parts.path == base_path or parts.path.startswith(base_path + "/")
        )

    def get(self, relative: str) -> dict[str, Any]:
        """GET `relative` (e.g. "Patient/1" or "Condition?patient=1") on this server."""
        return self._get(f"{self.base}/{relative.lstrip('/')}")

    def search(self, relative: str) -> list[dict[str, Any]]:
        """Every resource of a search, following `next` links on this server up to the page limit."""
        resources: list[dict[str, Any]] = []
        url: str | None = f"{self.base}/{relative.lstrip('/')}"
        pages = 0
        while url is not None:
            pages += 1
            if pages > self._max_pages:
                raise UpstreamError(f"search {relative} has more than {self._max_pages} pages")
            bundle = self._get(url)
            if bundle.get("resourceType") != "Bundle":
                raise UpstreamError(f"search {relative} answered a {bundle['resourceType']}")
            resources.extend(_entry_resources(bundle))
            url = _next_link(bundle)
            if url is not None:
                url = urljoin(self.base + "/", url)
                if not self._same_server(url):
                    raise UpstreamError(f"search {relative}: next link leaves the server ({url})")
        return resources

    def continue_search(self, url: str) -> list[dict[str, Any]]:
        """The resources of a search's further pages, from the `next` link `url` on this server."""
        url = urljoin(self.base + "/", url)
        if not self._same_server(url):
            raise UpstreamError(f"the next link {url} is not on {self.base}")
        resources: list[dict[str, Any]] = []
        pages = 0
        next_url: str | None = url
        while next_url is not None:
            pages += 1
            if pages > self._max_pages:
                raise UpstreamError(f"more than {self._max_pages} pages")
            bundle = self._get(next_url)
            if bundle.get("resourceType") != "Bundle":
                raise UpstreamError(f"a page answered a {bundle['resourceType']}")
            resources.extend(_entry_resources(bundle))
            next_url = _next_link(bundle)
            if next_url is not None:
                next_url = urljoin(self.base + "/", next_url)
                if not self._same_server(next_url):
                    raise UpstreamError(f"the next link {next_url} is not on {self.base}")
        return resources

    def patient_data(
        self, patient_id: str, searches: Iterable[tuple[str, str]] = PATIENT_SEARCHES
    ) -> list[dict[str, Any]]:
        """The Patient and everything the classifier reads about them; 404 when no such patient."""
        resources = [self.get(f"Patient/{patient_id}")]
        for resource_type, param in searches:
            resources.extend(self.search(f"{resource_type}?{param}={patient_id}&_count=200"))
        return resources


def _entry_resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for entry in bundle.get("entry") or []:
        if not isinstance(entry, dict):
            continue
        resource = entry.get("resource")
        search = entry.get("search")
        if isinstance(search, dict) and search.get("mode") == "outcome":
            continue
        if isinstance(resource, dict):
            out.append(resource)
    return out


def _next_link(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            return url if isinstance(url, str) and url else None
    return None
