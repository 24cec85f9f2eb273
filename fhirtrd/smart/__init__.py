"""SMART App Launch 2.x: the clinician's page inside an EHR, with the clinician's own token."""
