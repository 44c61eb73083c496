"""Governance across the registry and the data services: lineage (datasets -> derived datasets -> model
versions) and data-subject rights (access, erasure, rectification), which follow lineage into the models."""
