"""Fixtures of the app tests; ``env`` (a real process's environment) is in the root conftest."""
