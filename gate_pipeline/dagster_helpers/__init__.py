"""Dagster helpers shared by the modules in gate_pipeline/defs/ (no definitions of their own)."""
