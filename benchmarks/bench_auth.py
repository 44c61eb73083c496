"""Authentication + authorization cost per request (issue: identity and access), for API keys.

Measured on the path every request takes — ``ApiKeyAuthenticator.authenticate`` then the authorizer, with the
pepper already loaded and the key's last-used stamp fresh — against the baseline of an anonymous request (no
credential: the authorizer alone), in the same run, on SQLite. JWT and mTLS are not built yet.

Run: ``.venv/bin/python -m benchmarks.bench_auth``.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr

from bastion.app import build, local_operator
from bastion.app.container import operator_context
from bastion.core.settings import load_settings
from bastion.policy import local_operator_grants
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
        bastion = build(settings, grants=local_operator_grants(local_operator().id))
        migrate(bastion.database)
        ops = operator_context()
        bastion.identity.create_principal(ops, "service:bench")
        bastion.identity.grant(ops, "service:bench", "audit.read", "audit_log")
        token = bastion.identity.create_api_key(ops, "service:bench").token
        credentials = Credentials(scheme="bearer", value=SecretStr(token))
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

        api_key()  # warm: pepper loaded, last-used stamped
        base, keyed = _time(baseline), _time(api_key)
        bastion.close()
    for label, (p50, p99) in (
        ("baseline: anonymous request, authorizer only", base),
        ("API key: authenticate + authorize (stored grant)", keyed),
    ):
        print(f"{label:50s} p50 {p50:7.1f} us   p99 {p99:7.1f} us   ({p50 / base[0]:.1f}x baseline)")


if __name__ == "__main__":
    main()
