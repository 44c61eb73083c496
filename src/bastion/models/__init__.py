"""Model lifecycle services. So far: OMS-compatible model signing and verification (``signing``)."""
