"""Lineage: datasets -> transforms -> derived datasets -> model versions, as a graph read off what Bastion
recorded — never declared twice:

- a dataset version's report names its ingest transforms, and ``derived_from`` when it was made from another
  version (an ingest of an exported file, matched by the file's SHA-256; a rewrite under an erasure or a
  rectification);
- an export records the SHA-256 of the file it wrote;
- a model version's signed provenance names its training datasets by SHA-256, which matches a dataset
  version's canonical digest, the digest of the file it was ingested from, or an export of it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.core.errors import NotFound
from bastion.data.records import resource, version_row
from bastion.models.records import resource as model_resource
from bastion.spine.context import Context
from bastion.spine.uow import UnitOfWork
from bastion.store.database import Database
from bastion.store.tables import DatasetExport, DatasetVersionRow, ModelVersionRow


@dataclass
class Graph:
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: list[dict[str, str]] = field(default_factory=list)

    def node(self, key: str, **attributes: Any) -> str:
        self.nodes.setdefault(key, {"id": key, **attributes})
        return key

    def edge(self, source: str, target: str, relation: str) -> None:
        edge = {"from": source, "to": target, "relation": relation}
        if edge not in self.edges:
            self.edges.append(edge)

    def as_json(self) -> dict[str, Any]:
        return {"nodes": list(self.nodes.values()), "edges": self.edges}


def dataset_key(name: str, version: int) -> str:
    return f"dataset:{name}@{version}"


def model_key(name: str, version: int) -> str:
    return f"model:{name}@{version}"


class Lineage:
    def __init__(self, uow: UnitOfWork, database: Database) -> None:
        self._uow, self._database = uow, database

    def model(self, context: Context, name: str, version: int) -> Graph:
        """What a model version was trained on, and what those datasets came from."""
        with self._database.read() as session:
            target = model_resource(session, name)
        with self._uow.read(context, "models.read", target, details={"lineage": version}) as work:
            row = work.session.scalars(
                select(ModelVersionRow).where(
                    ModelVersionRow.model_name == name, ModelVersionRow.version == version
                )
            ).first()
            if row is None:
                raise NotFound(f"Model {name} has no version {version}.")
            graph = Graph()
            model = graph.node(model_key(name, version), kind="model", stage=row.stage, sha256=row.sha256)
            for ref in _training_sets(row):
                matches = _versions_by_digest(work.session, ref["sha256"])
                if not matches:
                    unknown = graph.node(f"digest:{ref['sha256']}", kind="external", name=ref.get("name"))
                    graph.edge(unknown, model, "trained")
                for dataset_version in matches:
                    source = self._dataset_node(graph, dataset_version)
                    graph.edge(source, model, "trained")
                    self._upstream(work.session, graph, dataset_version)
            work.details["nodes"] = len(graph.nodes)
            return graph

    def impact(self, context: Context, name: str, version: int | None) -> Graph:
        """Everything derived or trained from a dataset version: derived versions (recursively) and the model
        versions trained on any of them."""
        with self._database.read() as session:
            target = resource(session, name)
        with self._uow.read(context, "data.read", target, details={"lineage": version}) as work:
            start = version_row(work.session, name, version, deleted=version is not None)
            graph = Graph()
            self._dataset_node(graph, start)
            affected = self.downstream(work.session, start)
            for child, parent, relation in affected.derived:
                graph.edge(self._dataset_node(graph, parent), self._dataset_node(graph, child), relation)
            for model_version, dataset_version in affected.models:
                node = graph.node(
                    model_key(model_version.model_name, model_version.version),
                    kind="model",
                    stage=model_version.stage,
                )
                graph.edge(self._dataset_node(graph, dataset_version), node, "trained")
            work.details["nodes"] = len(graph.nodes)
            return graph

    def downstream(self, session: Session, start: DatasetVersionRow) -> Downstream:
        """Versions derived from ``start`` (transitively) and the model versions trained on any of them."""
        result = Downstream()
        seen = {start.id}
        queue = deque([start])
        versions = [start]
        while queue:
            parent = queue.popleft()
            for child in _derived_from(session, parent):
                if child.id not in seen:
                    seen.add(child.id)
                    queue.append(child)
                    versions.append(child)
                    result.derived.append((child, parent, child.report["derived_from"].get("via", "derived")))
        digests = {v.id: _digests(session, v) for v in versions}
        for model_version in session.scalars(select(ModelVersionRow)):
            trained = {ref["sha256"] for ref in _training_sets(model_version)}
            for dataset_version in versions:
                if trained & digests[dataset_version.id]:
                    result.models.append((model_version, dataset_version))
        return result

    def _upstream(self, session: Session, graph: Graph, version: DatasetVersionRow) -> None:
        origin = (version.report or {}).get("derived_from")
        while origin:
            parent = session.get(DatasetVersionRow, origin["version_id"])
            if parent is None:
                return
            graph.edge(self._dataset_node(graph, parent), self._dataset_node(graph, version), origin["via"])
            version, origin = parent, (parent.report or {}).get("derived_from")

    @staticmethod
    def _dataset_node(graph: Graph, version: DatasetVersionRow) -> str:
        transforms = [f"{t['op']} {t['field']}" for t in (version.report or {}).get("transforms", [])]
        return graph.node(
            dataset_key(version.dataset_name, version.version),
            kind="dataset",
            sha256=version.sha256,
            transforms=transforms,
            deleted=version.shredded_at is not None,
        )


@dataclass
class Downstream:
    derived: list[tuple[DatasetVersionRow, DatasetVersionRow, str]] = field(default_factory=list)
    models: list[tuple[ModelVersionRow, DatasetVersionRow]] = field(default_factory=list)


def _training_sets(row: ModelVersionRow) -> list[dict[str, Any]]:
    predicate = ((row.provenance or {}).get("statement") or {}).get("predicate") or {}
    return [d for d in predicate.get("datasets", []) if isinstance(d, dict) and d.get("sha256")]


def _digests(session: Session, version: DatasetVersionRow) -> set[str]:
    """Every digest a model's provenance may use for this version: its rows, its source file, its exports."""
    exports = session.scalars(
        select(DatasetExport.sha256).where(
            DatasetExport.dataset_name == version.dataset_name, DatasetExport.version == version.version
        )
    )
    return {version.sha256, version.source_sha256, *exports}


def _versions_by_digest(session: Session, digest: str) -> list[DatasetVersionRow]:
    found = list(
        session.scalars(
            select(DatasetVersionRow).where(
                (DatasetVersionRow.sha256 == digest) | (DatasetVersionRow.source_sha256 == digest)
            )
        )
    )
    for export in session.scalars(select(DatasetExport).where(DatasetExport.sha256 == digest)):
        row = session.scalars(
            select(DatasetVersionRow).where(
                DatasetVersionRow.dataset_name == export.dataset_name,
                DatasetVersionRow.version == export.version,
            )
        ).first()
        if row is not None and row not in found:
            found.append(row)
    return found


def _derived_from(session: Session, parent: DatasetVersionRow) -> list[DatasetVersionRow]:
    # The report is JSON; derived versions are few, so they are found by reading the dataset versions that
    # name a parent at all (any dataset: an export may be ingested elsewhere).
    return [
        row
        for row in session.scalars(select(DatasetVersionRow))
        if ((row.report or {}).get("derived_from") or {}).get("version_id") == parent.id
    ]
