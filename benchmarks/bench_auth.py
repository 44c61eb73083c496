"""Authentication + authorization cost per request (issue: identity and access), for API keys.

Measured on the path every request takes — ``ApiKeyAuthenticator.authenticate`` then the authorizer, with the
pepper already loaded and the key's last-used stamp fresh — against the baseline of an anonymous request (no
credential: the authorizer alone), in the same run, on SQLite. For API keys, ES256 access tokens and mTLS
client certificates (the certificate the TLS layer verified, mapped to its service principal). Every
decision is the Cedar authorizer's, with the principal holding the shipped ``auditor`` role.

Run: ``.venv/bin/python -m benchmarks.bench_auth``.
"""

from __future__ import annotations

import ssl
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from pydantic import SecretStr

from bastion.app import build
from bastion.app.container import operator_context
from bastion.core.settings import load_settings
from bastion.spine import Context, Credentials, Resource
from bastion.store import migrate

ROUNDS = 3000
AUDIT_LOG = Resource("audit_log", "main")


def _time(operation: Callable[[], object]) -> tuple[float, float]:
    samples = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        operation()
        samples.append((time.perf_counter() - started) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99)]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(overrides={"state_dir": Path(tmp)})
        bastion = build(settings)
        migrate(bastion.database)
        ops = operator_context()
        bastion.identity.create_principal(ops, "service:bench")
        bastion.identity.assign_role(ops, "service:bench", "auditor")
        token = bastion.identity.create_api_key(ops, "service:bench").token
        credentials = Credentials(scheme="bearer", value=SecretStr(token))
        client = Context(bastion.authenticator.authenticate(credentials))
        jwt_credentials = Credentials(
            scheme="bearer", value=SecretStr(bastion.tokens.issue(client, ()).token)
        )
        certificate = ssl.PEM_cert_to_DER_cert(
            bastion.client_certs.issue(ops, "service:bench", timedelta(days=1)).certificate_pem.decode()
        )
        authorizer = bastion.uow._authorizer
        anonymous = Context(bastion.authenticator.authenticate(None))

        def baseline() -> object:
            return authorizer.authorize(anonymous, "audit.read", AUDIT_LOG)

        def api_key() -> object:
            principal = bastion.authenticator.authenticate(credentials)
            decision = authorizer.authorize(Context(principal), "audit.read", AUDIT_LOG)
            if not decision.allowed:
                raise SystemExit("benchmark principal was not authorized")
            return decision

        def jwt() -> object:
            principal = bastion.authenticator.authenticate(jwt_credentials)
            return authorizer.authorize(Context(principal), "audit.read", AUDIT_LOG)

        def mtls() -> object:
            principal = bastion.certificates.authenticate_certificate(certificate)
            return authorizer.authorize(Context(principal), "audit.read", AUDIT_LOG)

        counter = iter(range(10**9))

        def api_key_cold() -> object:
            """A resource never seen before: entities parsed and Cedar evaluated, no cached decision."""
            principal = bastion.authenticator.authenticate(credentials)
            return authorizer.authorize(Context(principal), "keys.read", Resource("key", f"k{next(counter)}"))

        api_key()  # warm: pepper loaded, last-used stamped
        jwt()  # warm: key set loaded
        mtls()
        base, keyed, signed, mutual = _time(baseline), _time(api_key), _time(jwt), _time(mtls)
        cold = _time(api_key_cold)
        bastion.close()
    for label, (p50, p99) in (
        ("baseline: anonymous request, authorizer only", base),
        ("API key: authenticate + authorize (Cedar, role)", keyed),
        ("JWT (ES256): authenticate + authorize (Cedar, role)", signed),
        ("mTLS: certificate -> principal + authorize (Cedar, role)", mutual),
        ("API key, uncached decision (a new resource each time)", cold),
    ):
        print(f"{label:57s} p50 {p50:7.1f} us   p99 {p99:7.1f} us   ({p50 / base[0]:.1f}x baseline)")


if __name__ == "__main__":
    main()
