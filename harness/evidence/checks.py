"""What `tdp evidence verify` is given and what it says: the options and one verdict per check."""

from __future__ import annotations

from dataclasses import dataclass

from harness.verify.checks import Verdict
from harness.verify.rescore import RescorePlan


@dataclass(frozen=True)
class EvidenceCheck:
    """One verdict, naming the member (or part of the bundle) and the check."""

    member: str
    check: str
    verdict: Verdict
    detail: str


@dataclass(frozen=True)
class EvidenceOptions:
    """What the verifier brings: whom they trust, and optionally the models to re-score with."""

    signers: frozenset[str] = frozenset()  # pinned key fingerprints (sha256 of the raw key)
    trusted_roots_pem: bytes | None = None  # X.509 roots for the signer's certificate
    tsa_roots_pem: bytes | None = None  # trusted TSA roots for the manifest's timestamp
    models: tuple[str, ...] = ()  # model specs; each audit re-scores with the one matching it
    commitments: tuple[str, ...] = ()
    rescore_plan: RescorePlan = RescorePlan()


__all__ = ["EvidenceCheck", "EvidenceOptions"]
