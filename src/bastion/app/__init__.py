"""The composition root: the only place that reads ``Settings`` and constructs backends.

Stable API: ``build``, ``Bastion``, ``init_state``, ``serve``, ``local_operator``.
"""

from bastion.app.container import Bastion, build, local_operator
from bastion.app.server import ServeTarget, plan_serving, serve
from bastion.app.state import InitReport, init_state

__all__ = [
    "Bastion",
    "InitReport",
    "ServeTarget",
    "build",
    "init_state",
    "local_operator",
    "plan_serving",
    "serve",
]
