"""FHIR server client and batch sync."""
