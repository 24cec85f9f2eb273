"""The HTTP door: Flask app factory, REST routes and CDS Hooks."""

from fhirtrd.api.app import create_app

__all__ = ["create_app"]
