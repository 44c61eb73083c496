"""The model registry as a service: intake (streamed, scanned, encrypted, signed), stage moves through
policy and audit, approval gates with separation of duties, retirement by crypto-shredding."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from bastion.app import Bastion
from bastion.app.container import operator_context
from bastion.audit import AuditFilter
from bastion.audit.query import EventView
from bastion.core.clock import FrozenClock
from bastion.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from bastion.keys.errors import KeyStateError
from bastion.models.errors import (
    ArtifactRejected,
    ArtifactTooLarge,
    ArtifactUnscannable,
    GateFailed,
    LoadRefused,
)
from bastion.models.gates import GatePolicy, Threshold
from bastion.models.intake import ThirdParty
from bastion.models.provenance import DatasetRef
from bastion.spine import Context
from tests.models.conftest import clean_model, malicious_model, push

PROVENANCE = {
    "datasets": [{"name": "claims-2026", "version": "3", "sha256": "ab" * 32}],
    "hyperparameters": {"C": 1.0, "max_iter": 200},
    "code": {"repository": "https://git.example/ml/claims", "commit": "0123456789abcdef"},
    "metrics": {"accuracy": 0.94},
    "environment": {"bomFormat": "CycloneDX", "specVersion": "1.6", "components": []},
}


def audit(system: Bastion, action: str) -> list[EventView]:
    return list(system.audit.search(operator_context(), AuditFilter(action=action)).events)


@pytest.fixture
def model(system: Bastion, people: dict[str, Context]) -> str:
    system.models.create(people["alice"], "claims", description="claims triage", classification="internal")
    return "claims"


def test_push_scans_encrypts_signs_and_records(
    system: Bastion, people: dict[str, Context], model: str
) -> None:
    data = clean_model()
    info = push(system, people["alice"], model, data)
    assert (info.version, info.stage, info.scan_verdict, info.signed) == (1, "validated", "clean", True)
    assert info.sha256 == hashlib.sha256(data).hexdigest() and info.size == len(data)
    assert [h.to_stage for h in info.history] == ["registered", "validated"]
    blob = system.settings.models_dir / "blobs" / f"{info.id}.bste"
    stored = blob.read_bytes()
    assert data not in stored and stored.startswith(b"BSTE")  # encrypted at rest
    assert oct(blob.stat().st_mode & 0o777) == "0o600"
    assert list((system.settings.models_dir / "tmp").iterdir()) == []  # the plaintext workspace is gone
    assert push(system, people["alice"], model, data).version == 2
    with system.loader.open(people["alice"], model, 1) as loaded:
        assert loaded.path.read_bytes() == data


def test_unsafe_artifact_is_quarantined_without_bytes(
    system: Bastion, people: dict[str, Context], model: str
) -> None:
    with pytest.raises(ArtifactRejected) as raised:
        push(system, people["alice"], model, malicious_model(), "weights.bin")
    assert raised.value.extra["scan"]["verdict"] == "unsafe"
    assert any(f["global_name"] == "posix.system" or f["global_name"] == "os.system"
               for f in raised.value.extra["scan"]["findings"])  # fmt: skip
    [info] = system.models.versions(people["alice"], model)
    assert info.stage == "quarantined" and not info.signed
    assert info.scan_report["findings"]  # the finding is on file with the version
    assert list((system.settings.models_dir / "blobs").glob("*")) == []
    with pytest.raises(LoadRefused), system.loader.open(people["alice"], model, 1):
        pass
    [refusal] = [e for e in audit(system, "models.load") if e.outcome == "denied"]
    assert "quarantined" in str(refusal.reason)


def test_unknown_format_needs_a_policy(
    system: Bastion, people: dict[str, Context], model: str, clock: FrozenClock
) -> None:
    with pytest.raises(ArtifactUnscannable):
        push(system, people["alice"], model, b"\x00\x01 not a format anyone knows", "model.xyz")
    ops = operator_context()
    system.policies.write(
        ops,
        '@id("claims-unscannable")\n'
        'permit(principal, action == Bastion::Action::"models.accept-unscannable", '
        'resource == Bastion::Model::"claims");',
    )
    system.policies.activate(ops, 1)
    clock.advance(timedelta(seconds=3))  # past the 2 s policy and role caches
    info = push(system, people["alice"], model, b"\x00\x01 not a format anyone knows", "model.xyz")
    assert (info.stage, info.scan_verdict, info.scan_accepted_by) == ("validated", "unscannable", "policy")


def test_size_limit_and_bad_names_refused(system: Bastion, people: dict[str, Context], model: str) -> None:
    system.intake._max_bytes = 100
    with pytest.raises(ArtifactTooLarge):
        push(system, people["alice"], model, b"\x80\x04" + b"x" * 200)
    system.intake._max_bytes = 1 << 30
    for bad in ("../evil.pkl", ".hidden", "a/b.pkl", ""):
        with pytest.raises(InvalidInput):
            push(system, people["alice"], model, clean_model(), bad)
    with pytest.raises(NotFound):
        push(system, people["alice"], "no-such-model", clean_model())
    with pytest.raises(InvalidInput):
        push(system, people["alice"], model, b"")
    assert system.models.versions(people["alice"], model) == []
    assert list((system.settings.models_dir / "tmp").iterdir()) == []


def test_bad_provenance_is_refused_before_anything_is_stored(
    system: Bastion, people: dict[str, Context], model: str
) -> None:
    with (
        pytest.raises(InvalidInput, match="provenance"),
        system.intake.receive(people["alice"], model, "model.pkl") as upload,
    ):
        upload.write(clean_model())
        system.intake.accept(people["alice"], upload, provenance={"datasets": "not a list"})
    assert system.models.versions(people["alice"], model) == []
    blobs = system.settings.models_dir / "blobs"
    assert not blobs.exists() or list(blobs.iterdir()) == []


def test_only_permitted_principals_push(system: Bastion, people: dict[str, Context], model: str) -> None:
    with pytest.raises(PermissionDenied):
        push(system, people["bob"], model, clean_model())
    [denied] = [e for e in audit(system, "models.push") if e.outcome == "denied"]
    assert denied.actor_id == "user:bob"


def test_changed_bytes_are_refused_and_audited(
    system: Bastion, people: dict[str, Context], model: str
) -> None:
    """The Done-when case: a version whose stored bytes changed after signing does not load."""
    alice = people["alice"]
    info = push(system, alice, model, clean_model())
    blob = system.settings.models_dir / "blobs" / f"{info.id}.bste"
    # 1. A flipped ciphertext byte: authenticated encryption catches it.
    original = blob.read_bytes()
    blob.write_bytes(original[:-5] + bytes([original[-5] ^ 1]) + original[-4:])
    with pytest.raises(LoadRefused, match="failed authentication"), system.loader.open(alice, model, 1):
        pass
    # 2. Different bytes, validly encrypted under the version's own key (someone with key access re-encrypted
    #    a swapped artifact): the ciphertext authenticates, the OMS signature does not.
    from bastion.keys.envelope import encrypt_file  # noqa: PLC0415

    swapped = system.settings.state_dir / "swapped.pkl"
    swapped.write_bytes(clean_model().replace(b"weights", b"weightz"))
    system_ctx = system.intake._system
    own_key = system.models._vault.key_name(info.id)
    encrypt_file(system.keys, system_ctx, own_key, swapped, blob, object_id=info.id)
    with pytest.raises(LoadRefused, match="signature check failed"), system.loader.open(alice, model, 1):
        pass
    refusals = [e for e in audit(system, "models.load") if e.outcome == "denied"]
    assert len(refusals) == 2 and all(e.actor_id == "user:alice" for e in refusals)
    assert [e.outcome for e in audit(system, "models.load")].count("allowed") == 0


def test_gate_separation_of_duties_and_promotion(
    system: Bastion, people: dict[str, Context], model: str, clock: FrozenClock
) -> None:
    alice, bob, carol, sam = (people[n] for n in ("alice", "bob", "carol", "sam"))
    push(system, alice, model, clean_model())
    system.models.set_gate(sam, model, GatePolicy(approvals=2, metrics={"auc": Threshold(min=0.9)}))
    with pytest.raises(GateFailed) as failed:
        system.models.promote(alice, model, 1, "approved")
    failing = {c["name"] for c in failed.value.extra["gate"]["checks"] if not c["passed"]}
    assert failing == {"provenance", "metric:auc", "approvals"}
    stored = system.models.version(alice, model, 1).gate_result
    assert stored is not None and stored["passed"] is False  # the result is kept and shown

    # Separation of duties: the author cannot approve, even holding the approver role.
    system.identity.assign_role(operator_context(), "user:alice", "approver")
    clock.advance(timedelta(seconds=3))  # past the 2 s policy and role caches
    with pytest.raises(PermissionDenied):
        system.models.approve(alice, model, 1)
    system.models.approve(bob, model, 1, "looks right")
    with pytest.raises(Conflict):
        system.models.approve(bob, model, 1)  # once per reviewer
    system.models.approve(carol, model, 1)
    system.models.record_provenance(alice, model, 1, PROVENANCE)
    system.models.record_evaluation(
        alice, model, 1, DatasetRef(name="holdout", sha256="cd" * 32), {"auc": 0.87}
    )
    with pytest.raises(GateFailed, match="metric:auc"):
        system.models.promote(alice, model, 1, "approved")
    system.models.record_evaluation(
        alice, model, 1, DatasetRef(name="holdout", sha256="cd" * 32), {"auc": 0.93}
    )
    approved = system.models.promote(alice, model, 1, "approved")
    assert approved.stage == "approved" and approved.gate_result and approved.gate_result["passed"]
    assert set(approved.approvals) == {"user:bob", "user:carol"}
    assert system.models.promote(alice, model, 1, "production").stage == "production"

    # A second version goes to production; the first steps back to approved.
    push(system, alice, model, clean_model() + b"")
    system.models.set_gate(sam, model, GatePolicy(approvals=1, require_provenance=False))
    system.models.approve(bob, model, 2)
    system.models.promote(alice, model, 2, "approved")
    system.models.promote(alice, model, 2, "production")
    assert system.models.version(alice, model, None).version == 2
    assert system.models.version(alice, model, 1).stage == "approved"
    with pytest.raises(Conflict):
        system.models.promote(alice, model, 1, "approved")  # only validated versions go through the gate


def test_provenance_is_a_signed_statement_bound_to_the_digest(
    system: Bastion, people: dict[str, Context], model: str
) -> None:
    from bastion.models.signing import verify_bundle  # noqa: PLC0415

    info = push(system, people["alice"], model, clean_model())
    recorded = system.models.record_provenance(people["alice"], model, 1, PROVENANCE).provenance
    assert recorded is not None and recorded["missing"] == []
    signed = verify_bundle(recorded["bundle"], system.models.public_key(operator_context()))
    assert signed["subject"] == [{"name": "model.pkl", "digest": {"sha256": info.sha256}}]
    assert signed["predicate"]["code"]["commit"] == "0123456789abcdef"
    with pytest.raises(Conflict):
        system.models.record_provenance(people["alice"], model, 1, PROVENANCE)
    with pytest.raises(InvalidInput, match="datasets"):
        system.models.record_provenance(
            people["alice"], model, 2, {"datasets": [{"name": "x", "sha256": "no"}]}
        )
    with pytest.raises(InvalidInput, match="CycloneDX"):
        system.models.record_provenance(people["alice"], model, 1, {**PROVENANCE, "environment": {"a": 1}})


def test_third_party_import_pins_digest_and_needs_vetting(
    system: Bastion, people: dict[str, Context], model: str
) -> None:
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    data = clean_model()
    wrong = ThirdParty(sha256="00" * 32, source_url="https://hf.example/org/m", licence="apache-2.0")
    with pytest.raises(InvalidInput, match="pinned"):
        push(system, alice, model, data, third_party=wrong)
    assert system.models.versions(alice, model) == []
    pinned = ThirdParty(hashlib.sha256(data).hexdigest(), "https://hf.example/org/m", "apache-2.0")
    info = push(system, alice, model, data, third_party=pinned)
    assert info.origin == "third-party" and info.source == {"url": pinned.source_url, "licence": "apache-2.0"}
    system.models.set_gate(people["sam"], model, GatePolicy(approvals=1, require_provenance=False))
    system.models.approve(bob, model, 1)
    with pytest.raises(GateFailed, match="vetted"):
        system.models.promote(alice, model, 1, "approved")
    system.models.vet(carol, model, 1, "source and licence checked")
    assert system.models.promote(alice, model, 1, "approved").stage == "approved"


def test_retirement_crypto_shreds_with_archive(
    system: Bastion, people: dict[str, Context], model: str
) -> None:
    alice, sam = people["alice"], people["sam"]
    info = push(system, alice, model, clean_model())
    with pytest.raises(PermissionDenied):
        system.models.retire(alice, model, 1, reason="superseded")
    retired = system.models.retire(sam, model, 1, reason="superseded", archive=True)
    assert (retired.stage, retired.shredded, retired.archived) == ("retired", True, True)
    assert not (system.settings.models_dir / "blobs" / f"{info.id}.bste").exists()
    assert (system.settings.models_dir / "archive" / f"{info.id}.bste").exists()
    key = system.keys.describe(operator_context(), system.models._vault.key_name(info.id))
    assert key.state.value == "destroyed"
    with (
        pytest.raises(LoadRefused, match="retired"),
        system.loader.open(alice, model, 1, action="models.download"),
    ):
        pass
    with pytest.raises(Conflict):
        system.models.retire(sam, model, 1, reason="again")
    with pytest.raises(KeyStateError):
        system.keys.generate_data_key(operator_context(), system.models._vault.key_name(info.id), b"")


def test_quarantine_stops_loading(system: Bastion, people: dict[str, Context], model: str) -> None:
    push(system, people["alice"], model, clean_model())
    system.models.quarantine(people["sam"], model, 1, "allowlist v2 flags a global")
    with pytest.raises(LoadRefused, match="quarantined"), system.loader.open(people["alice"], model, 1):
        pass
    with pytest.raises(Conflict):
        system.models.promote(people["alice"], model, 1, "approved")


def test_history_and_listing(system: Bastion, people: dict[str, Context], model: str) -> None:
    push(system, people["alice"], model, clean_model())
    system.models.quarantine(people["sam"], model, 1, "suspicious")
    system.models.retire(people["sam"], model, 1, reason="bad")
    [info] = system.models.versions(people["alice"], model)
    assert [(h.from_stage, h.to_stage, h.by) for h in info.history] == [
        (None, "registered", "user:alice"),
        ("registered", "validated", "user:alice"),
        ("validated", "quarantined", "user:sam"),
        ("quarantined", "retired", "user:sam"),
    ]
    assert [m.name for m in system.models.list_models(people["bob"])] == ["claims"]
    assert [h.reason for h in info.history][2:] == ["suspicious", "bad"]
