"""FHIR R4 adapters: inbound (resources → facts) and outbound (assessment → resources)."""
