"""Labelling integrity. Labels are versioned records with their labeller: only principals holding the
``labeller`` role on that dataset (a role binding scoped to it) may write, every write is audited, and a
change is a new revision — the old one is kept, no longer current.

The integrity report looks for poisoning: for each labeller, how often their current labels disagree with
the consensus of the *other* labellers of the same items (leave-one-out majority), and — when a reference
model's labels are given — with the model. A labeller is flagged when their disagreement rate stands far
above their peers': more than ``threshold`` robust deviations (median absolute deviation, scaled to a
normal's sigma) above the median rate, and by at least ``min_gap`` in absolute terms (so a team of careful
labellers with a tiny spread does not flag ordinary slips).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from bastion.core.clock import Clock
from bastion.core.errors import InvalidInput
from bastion.core.ids import uuid7
from bastion.data.records import dataset_row, resource
from bastion.spine.context import Context
from bastion.spine.uow import UnitOfWork
from bastion.store.database import Database
from bastion.store.tables import LabelRow

MAX_BATCH = 10_000
_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True, slots=True)
class LabellerScore:
    labeller: str
    labels: int
    compared: int  # items other labellers also labelled (or the reference model did)
    disagreement: float  # with the leave-one-out consensus
    model_disagreement: float | None
    flagged: bool
    reason: str | None


class Labels:
    def __init__(self, uow: UnitOfWork, database: Database, clock: Clock) -> None:
        self._uow, self._database, self._clock = uow, database, clock

    def write(self, context: Context, name: str, labels: dict[str, str]) -> int:
        """Record the caller's labels for items (``{item: label}``); returns how many changed."""
        if not labels or len(labels) > MAX_BATCH:
            raise InvalidInput(f"Send 1-{MAX_BATCH} labels at a time.")
        for item, label in labels.items():
            if not item or len(item) > 256 or not label or len(label) > 256:
                raise InvalidInput("Items and labels are 1-256 characters.")
        with self._database.read() as session:
            target = resource(session, name)
        labeller = context.principal.id
        details: dict[str, Any] = {"items": len(labels)}
        with self._uow.act(context, "data.label", target, details=details) as work:
            dataset_row(work.session, name)
            current = {
                row.item: row
                for row in work.session.scalars(
                    select(LabelRow).where(
                        LabelRow.dataset_name == name,
                        LabelRow.labeller == labeller,
                        LabelRow.current.is_(True),
                        LabelRow.item.in_(list(labels)),
                    )
                )
            }
            changed = 0
            now = self._clock.now()
            for item, label in labels.items():
                previous = current.get(item)
                if previous is not None and previous.label == label:
                    continue
                if previous is not None:
                    previous.current = False
                work.session.add(
                    LabelRow(
                        id=f"lb-{uuid7()}",
                        dataset_name=name,
                        item=item,
                        labeller=labeller,
                        label=label,
                        revision=(previous.revision + 1) if previous else 1,
                        current=True,
                        created_at=now,
                    )
                )
                changed += 1
            work.details.update(changed=changed, revised=sum(1 for item in labels if item in current))
            return changed

    def history(self, context: Context, name: str, item: str) -> list[dict[str, Any]]:
        with self._database.read() as session:
            target = resource(session, name)
        with self._uow.read(context, "data.read", target, details={"labels_of": item}) as work:
            rows = work.session.scalars(
                select(LabelRow)
                .where(LabelRow.dataset_name == name, LabelRow.item == item)
                .order_by(LabelRow.created_at, LabelRow.revision)
            )
            return [
                {"labeller": r.labeller, "label": r.label, "revision": r.revision, "current": r.current}
                for r in rows
            ]

    def report(
        self,
        context: Context,
        name: str,
        reference: dict[str, str] | None = None,
        *,
        threshold: float = 3.0,
        min_gap: float = 0.15,
    ) -> list[LabellerScore]:
        """Per labeller: disagreement with the others' consensus (and ``reference``); outliers flagged."""
        with self._database.read() as session:
            target = resource(session, name)
        with self._uow.read(context, "data.read", target, details={"view": "label-report"}) as work:
            count = work.session.scalar(
                select(func.count()).select_from(LabelRow).where(LabelRow.dataset_name == name)
            )
            rows = work.session.execute(
                select(LabelRow.item, LabelRow.labeller, LabelRow.label).where(
                    LabelRow.dataset_name == name, LabelRow.current.is_(True)
                )
            ).all()
            work.details["labels"] = count
        return score(
            [(item, labeller, label) for item, labeller, label in rows], reference, threshold, min_gap
        )


def score(
    labels: list[tuple[str, str, str]],
    reference: dict[str, str] | None,
    threshold: float,
    min_gap: float,
) -> list[LabellerScore]:
    by_item: dict[str, dict[str, str]] = defaultdict(dict)
    for item, labeller, label in labels:
        by_item[item][labeller] = label
    stats: dict[str, list[int]] = defaultdict(
        lambda: [0, 0, 0, 0, 0]
    )  # labels, compared, differ, ref n, ref d
    for item, given in by_item.items():
        for labeller, label in given.items():
            entry = stats[labeller]
            entry[0] += 1
            others = Counter(v for who, v in given.items() if who != labeller)
            if others:
                top = others.most_common()
                if len(top) == 1 or top[0][1] > top[1][1]:  # a clear majority of the others
                    entry[1] += 1
                    entry[2] += label != top[0][0]
            if reference is not None and item in reference:
                entry[3] += 1
                entry[4] += label != reference[item]
    rates = {who: (s[2] / s[1] if s[1] else 0.0) for who, s in stats.items()}
    model_rates = {who: (s[4] / s[3] if s[3] else None) for who, s in stats.items()}
    known = {w: r for w, r in model_rates.items() if r is not None}
    flags: dict[str, str] = {}
    for found in (_outliers(rates, threshold, min_gap, "consensus"),
                  _outliers(known, threshold, min_gap, "reference model")):  # fmt: skip
        for who, reason in found.items():
            flags[who] = f"{flags[who]}; {reason}" if who in flags else reason
    return [
        LabellerScore(
            labeller=who,
            labels=s[0],
            compared=s[1],
            disagreement=rates[who],
            model_disagreement=model_rates[who],
            flagged=who in flags,
            reason=flags.get(who),
        )
        for who, s in sorted(stats.items())
    ]


def _outliers(rates: dict[str, float], threshold: float, min_gap: float, against: str) -> dict[str, str]:
    if len(rates) < 3:
        return {}  # no peers to compare with
    values = list(rates.values())
    median = statistics.median(values)
    spread = _MAD_TO_SIGMA * statistics.median(abs(v - median) for v in values)
    flagged = {}
    for who, rate in rates.items():
        excess = rate - median
        if excess >= min_gap and (spread == 0 or excess / spread > threshold):
            flagged[who] = f"disagrees with the {against} {rate:.0%} of the time; peers' median {median:.0%}"
    return flagged
