"""Security spine: keys. For now, the local certificate authority that serves HTTPS out of the box.

Stable API: ``LocalCA``, ``TlsFiles``.
"""

from bastion.keys.local_ca import LocalCA, TlsFiles

__all__ = ["LocalCA", "TlsFiles"]
