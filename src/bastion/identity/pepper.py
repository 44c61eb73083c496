"""The API-key pepper: a random server secret in the secrets store (encrypted, audited when read), loaded
once per process by Bastion's system principal and kept in memory."""

from __future__ import annotations

import base64
import secrets
import threading

from pydantic import SecretStr

from bastion.core.errors import NotFound
from bastion.keys.secrets_store import SecretsStore
from bastion.policy.defaults import PEPPER_SECRET_NAME
from bastion.spine.context import Context

PEPPER_SECRET = PEPPER_SECRET_NAME  # the system principal's grants name exactly this secret


class Pepper:
    def __init__(self, store: SecretsStore, context: Context) -> None:
        self._store, self._context = store, context
        self._value: bytes | None = None
        self._lock = threading.Lock()

    def get(self) -> bytes:
        with self._lock:
            if self._value is None:
                try:
                    stored = self._store.get(self._context, PEPPER_SECRET)
                except NotFound:
                    fresh = base64.b64encode(secrets.token_bytes(32)).decode()
                    self._store.put(self._context, PEPPER_SECRET, SecretStr(fresh))
                    stored = self._store.get(self._context, PEPPER_SECRET)
                self._value = base64.b64decode(stored.value.get_secret_value())
            return self._value
