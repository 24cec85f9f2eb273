"""The code tables and thresholds of fhirtrd, as data (installed as fhirtrd.mappings)."""
