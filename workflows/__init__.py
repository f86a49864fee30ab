"""Deterministic conductor code only. `workflows.registry.WORKFLOWS` lists the workflows.

This file imports nothing: the workflow sandbox imports the package of every workflow it
runs, in every run, and importing the whole registry here cost each run the import of every
other workflow module (docs/PROFILE.md).
"""
