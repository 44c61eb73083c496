"""The demo a fresh ``bastion up`` sets up: a scikit-learn classifier trained on the breast-cancer data that
ships with scikit-learn, taken through the whole registry — scanned, signed, with provenance and a holdout
evaluation, through a gate of two approvals by approvers other than its author — into production, and an
inference client whose API key (shown once) the printed curl line uses.

Every step goes through the same services, policies and audit log as any other request; the demo principals
are ordinary principals with ordinary roles.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from bastion.app.container import Bastion, operator_context
from bastion.models.gates import GatePolicy, Threshold
from bastion.models.provenance import DatasetRef, environment_sbom
from bastion.spine.context import Context, Principal, PrincipalType

MODEL = "breast-cancer"
_CLEARANCE = {"clearance": "confidential"}
PEOPLE = {
    "user:demo-engineer": ("ml-engineer", PrincipalType.USER),
    "user:demo-approver-1": ("approver", PrincipalType.USER),
    "user:demo-approver-2": ("approver", PrincipalType.USER),
    "user:demo-security": ("security-admin", PrincipalType.USER),
    "service:demo-client": ("inference-client", PrincipalType.SERVICE),
}


@dataclass(frozen=True, slots=True)
class Demo:
    model: str
    version: int
    token: str
    sample: list[float]
    accuracy: float

    def curl(self, url: str, ca_cert: Path | None) -> str:
        body = json.dumps({"inputs": [self.sample]}, separators=(",", ":"))
        tls = f"--cacert {ca_cert} " if ca_cert else ""
        return (
            f"curl {tls}-H 'authorization: Bearer {self.token}' -H 'content-type: application/json' "
            f"-d '{body}' {url}/v1/models/{self.model}/predict"
        )


def _context(principal_id: str, kind: PrincipalType) -> Context:
    principal = Principal(principal_id, kind, "local", MappingProxyType(_CLEARANCE))
    return Context(principal, source_address="local", user_agent="bastion-demo")


def needed(bastion: Bastion) -> bool:
    """Only a fresh state: no model registered yet."""
    return not bastion.models.list_models(operator_context())


def set_up(bastion: Bastion) -> Demo:
    import joblib  # noqa: PLC0415 - the demo only
    import numpy as np  # noqa: PLC0415
    from sklearn.datasets import load_breast_cancer  # noqa: PLC0415
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
    from sklearn.model_selection import train_test_split  # noqa: PLC0415

    ops = operator_context()
    contexts = {}
    for principal_id, (role, kind) in PEOPLE.items():
        bastion.identity.create_principal(ops, principal_id, attributes=_CLEARANCE)
        bastion.identity.assign_role(ops, principal_id, role)
        contexts[principal_id] = _context(principal_id, kind)
    engineer = contexts["user:demo-engineer"]

    data = load_breast_cancer()
    train_x, test_x, train_y, test_y = train_test_split(
        data.data, data.target, test_size=0.25, random_state=7
    )
    hyperparameters = {"C": 1.0, "max_iter": 5000}
    model = LogisticRegression(C=1.0, max_iter=5000).fit(train_x, train_y)
    accuracy = float(model.score(test_x, test_y))
    dataset_sha = hashlib.sha256(
        np.ascontiguousarray(data.data).tobytes() + data.target.tobytes()
    ).hexdigest()
    holdout_sha = hashlib.sha256(np.ascontiguousarray(test_x).tobytes()).hexdigest()

    bastion.models.create(engineer, MODEL, description="Demo: breast-cancer classifier (scikit-learn)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.joblib"
        joblib.dump(model, path)
        with bastion.intake.receive(engineer, MODEL, path.name) as upload, path.open("rb") as source:
            while block := source.read(1 << 20):
                upload.write(block)
            provenance = {
                "datasets": [{"name": "sklearn.datasets.load_breast_cancer", "sha256": dataset_sha}],
                "hyperparameters": hyperparameters,
                "code": {
                    "repository": "bastion:demo",
                    "commit": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
                },
                "metrics": {"accuracy": accuracy},
                "environment": environment_sbom(),
            }
            version = bastion.intake.accept(engineer, upload, provenance=provenance).version
    bastion.models.record_evaluation(
        engineer,
        MODEL,
        version,
        DatasetRef(name="breast-cancer-holdout", sha256=holdout_sha),
        {"accuracy": accuracy},
    )
    gate = GatePolicy(approvals=2, metrics={"accuracy": Threshold(min=0.9)})
    bastion.models.set_gate(contexts["user:demo-security"], MODEL, gate)
    bastion.models.approve(contexts["user:demo-approver-1"], MODEL, version, "demo review")
    bastion.models.approve(contexts["user:demo-approver-2"], MODEL, version, "demo review")
    bastion.models.promote(engineer, MODEL, version, "approved")
    bastion.models.promote(engineer, MODEL, version, "production")
    key = bastion.identity.create_api_key(ops, "service:demo-client")
    sample = [float(v) for v in test_x[0]]
    return Demo(MODEL, version, key.token, sample, accuracy)
