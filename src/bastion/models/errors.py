"""Errors of the model registry: each a stable code clients and scripts can match on."""

from __future__ import annotations

from bastion.core.errors import BastionError, ExitCode, PayloadTooLarge


class ArtifactRejected(BastionError):
    """The scanner found something unsafe: the version is kept as a quarantined record, its bytes are not."""

    code = "models.artifact_rejected"
    status = 422
    exit_code = ExitCode.FINDING
    title = "Artifact rejected"


class ArtifactUnscannable(BastionError):
    """The scanner could not judge the artifact and no policy allows such artifacts for this model."""

    code = "models.artifact_unscannable"
    status = 422
    exit_code = ExitCode.UNSCANNABLE
    title = "Artifact cannot be scanned"
    default_remedy = (
        "Convert the model to a format the scanner reads (safetensors, ONNX, a pickle of allowlisted "
        "classes), or have a security admin permit models.accept-unscannable for this model in a policy."
    )


class ArtifactTooLarge(PayloadTooLarge):
    code = "models.artifact_too_large"
    title = "Artifact too large"


class LoadRefused(BastionError):
    """A version may not be loaded (retired, quarantined, unverifiable signature, unclean scan)."""

    code = "models.load_refused"
    status = 422
    exit_code = ExitCode.FINDING
    title = "Model load refused"


class GateFailed(BastionError):
    code = "models.gate_failed"
    status = 409
    exit_code = ExitCode.CONFLICT
    title = "Approval gate not passed"
