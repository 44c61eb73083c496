"""Bastion: security control plane and gateway for AI applications."""
