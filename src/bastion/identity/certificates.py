"""Issuing client certificates for service-to-service mTLS from the local CA — an authorized, audited action.

Only service accounts get certificates; the certificate names its principal, so disabling the principal
refuses the certificate too (within the authenticator's 2 s cache). The private key is handed back once.
"""

from __future__ import annotations

from datetime import timedelta

from bastion.core.errors import InvalidInput, NotFound
from bastion.keys import ClientCertificate, LocalCA
from bastion.spine.context import Context, PrincipalType, Resource
from bastion.spine.uow import UnitOfWork
from bastion.store.tables import PrincipalRow

MAX_CERT_LIFETIME = timedelta(days=397)  # the CA/Browser Forum ceiling, a sane one for clients too


class ClientCertificateIssuer:
    def __init__(self, uow: UnitOfWork, ca: LocalCA) -> None:
        self._uow, self._ca = uow, ca

    @property
    def ca_certificate(self) -> str:
        return str(self._ca.ca_cert_path)

    def issue(self, context: Context, principal_id: str, lifetime: timedelta) -> ClientCertificate:
        if not timedelta(hours=1) <= lifetime <= MAX_CERT_LIFETIME:
            raise InvalidInput("A client certificate lives between an hour and 397 days.")
        with self._uow.act(context, "identity.certs.issue", Resource("principal", principal_id)) as work:
            row = work.session.get(PrincipalRow, principal_id)
            if row is None:
                raise NotFound(f"There is no principal {principal_id}.")
            if row.type != PrincipalType.SERVICE.value:
                raise InvalidInput("Client certificates are for service accounts.")
            issued = self._ca.issue_client_cert(principal_id, lifetime)
            work.details.update(
                serial=issued.serial,
                fingerprint_sha256=issued.fingerprint_sha256,
                not_after=issued.not_after.isoformat(),
            )
            return issued
