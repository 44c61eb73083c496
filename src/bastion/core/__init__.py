"""Base layer: settings, errors, clock, ids and logging. Imports nothing else from Bastion."""
