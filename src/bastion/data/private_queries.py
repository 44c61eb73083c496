"""Differentially private queries as an authorized, audited action that spends a consumer's budget.

The dataset's schema declares the budget (epsilon, delta) each consumer has across its versions. A query is
checked against the consumer's composed spend before anything is read (a refusal is audited), then charged
in the transaction that records it: the dataset row is locked, the ledger re-read and re-checked, the noisy
answer drawn and the spend written with its audit event — two concurrent queries cannot both take the last
of a budget. No budget declared: no queries (fail closed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from bastion.core.clock import Clock
from bastion.core.errors import InvalidInput, PermissionDenied
from bastion.core.ids import uuid7
from bastion.data import privacy
from bastion.data.privacy import DpQuery, Spent
from bastion.data.records import dataset_info, dataset_row, resource, version_row
from bastion.data.schema import DatasetSchema, PrivacyBudget
from bastion.data.synthetic import Synthetic, synthesize, utility
from bastion.data.versions import load_rows
from bastion.keys.vault import ObjectVault
from bastion.spine.context import Context, Resource
from bastion.spine.uow import UnitOfWork
from bastion.store.database import Database
from bastion.store.tables import DatasetRow, PrivacySpend

ACTION = "data.query"


class BudgetExhausted(PermissionDenied):
    code = "privacy.budget_exhausted"
    title = "Privacy budget exhausted"
    default_remedy = "Ask the dataset's steward for a larger budget, or query less."


@dataclass(frozen=True, slots=True)
class Answer:
    dataset: str
    version: int
    query: dict[str, Any]
    value: Any
    mechanism: str
    scale: float
    spent: Spent  # the consumer's composed total after this query
    budget: PrivacyBudget


@dataclass(frozen=True, slots=True)
class _Charged:
    version: int
    total: Spent
    budget: PrivacyBudget
    result: Any


class PrivateQueries:
    def __init__(self, uow: UnitOfWork, database: Database, clock: Clock, vault: ObjectVault) -> None:
        self._uow, self._database, self._clock, self._vault = uow, database, clock, vault

    def query(self, context: Context, name: str, version: int | None, query: DpQuery) -> Answer:
        charged = self._charge(
            context, name, version, query.epsilon, query.delta, query.describe(),
            lambda rows, schema: privacy.release(rows, schema, query),
        )  # fmt: skip
        answer: privacy.Release = charged.result
        return Answer(
            name, charged.version, query.describe(), answer.value, answer.mechanism, answer.scale,
            charged.total, charged.budget,
        )  # fmt: skip

    def synthesize(
        self,
        context: Context,
        name: str,
        version: int | None,
        epsilon: float,
        count: int,
        *,
        with_utility: bool = False,
    ) -> tuple[Synthetic, dict[str, Any] | None, Spent]:
        """DP synthetic rows from noisy marginals, charged ``epsilon``. ``with_utility`` adds a report that
        compares them with the original — computed on the original, so it needs ``data.export`` too."""
        if not 0 < epsilon <= 10:
            raise InvalidInput("Epsilon is in (0, 10].")
        describe = {"kind": "synthetic", "epsilon": epsilon, "rows": count}
        if with_utility:
            with self._database.read() as session:
                target = resource(session, name)
            self._uow.authorize(context, "data.export", target, details={"utility_report": True})
        charged = self._charge(
            context, name, version, epsilon, 0.0, describe,
            lambda rows, schema: (synthesize(rows, schema, epsilon, count), rows, schema),
        )  # fmt: skip
        made, original, schema = charged.result
        report = utility(original, made, schema) if with_utility else None
        return made, report, charged.total

    def _charge(
        self,
        context: Context,
        name: str,
        version: int | None,
        epsilon: float,
        delta: float,
        describe: dict[str, Any],
        compute: Callable[[list[dict[str, Any]], DatasetSchema], Any],
    ) -> _Charged:
        """Authorize, check the budget, read the version, then — under a lock on the dataset, with the spend
        and its audit event in one transaction — check again and compute the release."""
        with self._database.read() as session:
            target = resource(session, name)
        self._uow.authorize(context, ACTION, target, details={"query": describe})
        with self._database.read() as session:
            info = dataset_info(dataset_row(session, name))
            row = version_row(session, name, version)
            version_id, number = row.id, row.version
        budget = info.schema.privacy_budget
        consumer = context.principal.id
        if budget is None:
            self._uow.refuse(
                context, ACTION, target, "no privacy budget declared", details={"version": number}
            )
            raise PermissionDenied(f"Dataset {name} declares no privacy budget: it answers no queries.")
        fits, total = privacy.within(budget, [*self._ledger(name, consumer), (epsilon, delta)])
        if not fits:
            self._exhausted(context, target, number, describe, total, budget)
        rows = load_rows(self._vault, context, version_id, f"{name}@{number}")
        details: dict[str, Any] = {"version": number, "query": describe}
        with self._uow.act(context, ACTION, target, details=details) as work:
            # Serialise spends on this dataset, then check again with what committed meanwhile.
            work.session.execute(select(DatasetRow.name).where(DatasetRow.name == name).with_for_update())
            fits, total = privacy.within(
                budget, [*self._ledger(name, consumer, work.session), (epsilon, delta)]
            )
            if not fits:
                raise BudgetExhausted(self._exhausted_message(name, total, budget))
            result = compute(rows, info.schema)
            work.session.add(
                PrivacySpend(
                    id=f"ps-{uuid7()}",
                    dataset_name=name,
                    consumer=consumer,
                    query={**describe, "version": number},
                    epsilon=epsilon,
                    delta=delta,
                    at=self._clock.now(),
                )
            )
            work.details.update(
                epsilon=epsilon,
                delta=delta,
                spent={"epsilon": total.epsilon, "delta": total.delta, "queries": total.queries},
                budget=budget.model_dump(),
            )
            if isinstance(result, privacy.Release):
                work.details.update(mechanism=result.mechanism, scale=result.scale, released=result.value)
        return _Charged(number, total, budget, result)

    def spent(self, context: Context, name: str) -> dict[str, Spent]:
        """Each consumer's composed spend on ``name`` (an audited read)."""
        with self._database.read() as session:
            target = resource(session, name)
        with self._uow.read(context, "data.read", target, details={"view": "privacy-spend"}) as work:
            budget = dataset_info(dataset_row(work.session, name)).schema.privacy_budget
            slack = budget.delta / 2 if budget else 0.0
            rows = work.session.execute(
                select(PrivacySpend.consumer, PrivacySpend.epsilon, PrivacySpend.delta).where(
                    PrivacySpend.dataset_name == name
                )
            ).all()
        ledgers: dict[str, list[tuple[float, float]]] = {}
        for consumer, epsilon, delta in rows:
            ledgers.setdefault(consumer, []).append((epsilon, delta))
        return {consumer: privacy.composed(spends, slack) for consumer, spends in ledgers.items()}

    def _ledger(self, name: str, consumer: str, session: Any = None) -> list[tuple[float, float]]:
        statement = select(PrivacySpend.epsilon, PrivacySpend.delta).where(
            PrivacySpend.dataset_name == name, PrivacySpend.consumer == consumer
        )
        if session is not None:
            return [(e, d) for e, d in session.execute(statement).all()]
        with self._database.read() as fresh:
            return [(e, d) for e, d in fresh.execute(statement).all()]

    def _exhausted(
        self,
        context: Context,
        target: Resource,
        number: int,
        describe: dict[str, Any],
        total: Spent,
        budget: PrivacyBudget,
    ) -> None:
        details = {"version": number, "query": describe, "would_spend": total.epsilon}
        self._uow.refuse(context, ACTION, target, "privacy budget exhausted", details=details)
        raise BudgetExhausted(self._exhausted_message(target.id, total, budget))

    @staticmethod
    def _exhausted_message(name: str, total: Spent, budget: PrivacyBudget) -> str:
        return (
            f"This query would bring your privacy loss on {name} to epsilon {total.epsilon:.4g}, "
            f"delta {total.delta:.3g}; your budget is epsilon {budget.epsilon:g}, delta {budget.delta:g}. "
            "Nothing was released."
        )
