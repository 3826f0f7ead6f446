"""Evidence bundles for litigation: signed archive, custody log, PDF expert report, verifier."""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> module; imported on first use, so that `tdp` starts without loading them
_API = {
    "BundleError": "bundle", "Manifest": "bundle", "Member": "bundle",
    "CustodyError": "custody", "CustodyRecord": "custody", "check_chain": "custody",
    "parse_log": "custody",
    "PackOptions": "pack", "PackResult": "pack", "pack": "pack",
    "Signer": "signing", "SigningError": "signing", "load_signer": "signing",
    "write_key": "signing",
    "EvidenceCheck": "verify", "EvidenceOptions": "verify", "verify_bundle": "verify",
    "render_verdict": "verdict",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'harness.evidence' has no attribute {name!r}")
    return getattr(importlib.import_module(f"harness.evidence.{_API[name]}"), name)
