"""`python -m fhirtrd` runs the command line."""

from fhirtrd.cli import run

run()
