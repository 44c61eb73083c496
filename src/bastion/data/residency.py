"""Residency: every dataset has a region, and so does every place its data goes — the deployment's storage
(the ``data_region`` setting) and an export's declared destination. Moving data to another region than the
dataset's is refused unless a Cedar policy permits ``data.transfer`` for it — no shipped role does: it takes
an explicit rule, e.g.::

    permit(principal, action == Bastion::Action::"data.transfer", resource)
    when { resource has region && resource.region == "eu-west-1" &&
           context has destination_region && context.destination_region == "eu-central-1" };

Either way the decision is audited."""

from __future__ import annotations

from dataclasses import replace

from bastion.spine.context import Context, Resource
from bastion.spine.uow import UnitOfWork

ACTION = "data.transfer"


def check_transfer(
    uow: UnitOfWork, context: Context, dataset: Resource, source: str, destination: str | None, purpose: str
) -> None:
    """Returns if ``destination`` is the dataset's own region (or unknown); otherwise asks the policy, which
    audits and raises a refusal, and audits an allowed transfer before the data moves."""
    if destination is None or destination == source:
        return
    moving = replace(context, destination=destination)
    details = {"from": source, "to": destination, "for": purpose}
    decision = uow.authorize(moving, ACTION, dataset, details=details)
    uow.record(moving, ACTION, dataset, decision, details)
