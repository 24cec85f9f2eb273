"""The pure clinical core: facts in, assessments out. Standard library only."""
