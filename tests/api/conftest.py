from __future__ import annotations

import pytest

from bastion.app import Bastion


@pytest.fixture
def bastion(system: Bastion) -> Bastion:
    """The API tests' name for the shared ``system`` fixture."""
    return system
