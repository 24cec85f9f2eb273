"""fhirtrd: treatment-resistant depression and social anxiety disorder from FHIR R4 data."""

__version__ = "0.1.0"
