"""Security spine: authorization.

Until the Cedar engine lands, ``GrantAuthorizer`` is the only authorizer: deny by default, allowing exactly
the (principal, action, resource type) triples it was given. There is no allow-all authorizer, anywhere.
Stable API: ``Grant``, ``GrantAuthorizer``, ``local_operator_grants``.
"""

from bastion.policy.defaults import LOCAL_OPERATOR_ACTIONS, local_operator_grants, system_grants
from bastion.policy.grants import Grant, GrantAuthorizer

__all__ = ["LOCAL_OPERATOR_ACTIONS", "Grant", "GrantAuthorizer", "local_operator_grants", "system_grants"]
