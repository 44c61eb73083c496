"""Model artifact scanning: judge what a file would do when loaded, without loading it.

Depends on nothing else in Bastion (its own import-linter contract), so ``bastion scan`` starts fast and the
scanner can run anywhere. Stable API: ``scan_path``, ``ScanReport``, ``Verdict``, ``Finding``, ``Severity``.
"""

from bastion.scanning.report import Finding, ScanReport, Severity, Verdict
from bastion.scanning.scanner import scan_path

__all__ = ["Finding", "ScanReport", "Severity", "Verdict", "scan_path"]
