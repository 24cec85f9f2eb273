"""The clinician's page: the treatment-resistance timeline (SVG), the HTML page and the static report."""
