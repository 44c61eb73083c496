"""Security spine: keys. For now, the local certificate authority that serves HTTPS out of the box.

Stable API: ``LocalCA``, ``TlsFiles``, ``ClientCertificate``.
"""

from bastion.keys.local_ca import PRINCIPAL_URI_PREFIX, ClientCertificate, LocalCA, TlsFiles

__all__ = ["PRINCIPAL_URI_PREFIX", "ClientCertificate", "LocalCA", "TlsFiles"]
