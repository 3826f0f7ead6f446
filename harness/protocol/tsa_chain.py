"""Certificate checks for an RFC 3161 TSA: the chain up to its root, the timeStamping EKU.

Done with `cryptography` so that each failure can say which certificate is wrong and why;
rfc3161-client's PKCS#7 verification then checks the same chain again inside OpenSSL.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID


class ChainError(ValueError):
    """A TSA certificate chain is malformed, broken, untrusted or not valid at the stamp time."""


@dataclass(frozen=True)
class VerifiedChain:
    """A chain checked from the TSA certificate up to a self-signed root."""

    tsa: x509.Certificate
    intermediates: tuple[x509.Certificate, ...]
    root: x509.Certificate

    @property
    def root_sha256(self) -> str:
        """Hex sha256 of the root certificate's DER: the identity a reader decides to trust."""
        return self.root.fingerprint(hashes.SHA256()).hex()


def subject(cert: x509.Certificate) -> str:
    """The certificate's subject as an RFC 4514 string."""
    return cert.subject.rfc4514_string()


def load_pem_chain(pem: bytes, what: str = "chain_pem") -> list[x509.Certificate]:
    """Every certificate in a PEM bundle, in order; ChainError when there is none."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as e:
        raise ChainError(f"{what} is not a PEM certificate bundle ({e})") from None
    if not certs:
        raise ChainError(f"{what} holds no certificate")
    return certs


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _is_self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject and _issued_by(cert, cert)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def check_timestamping_eku(cert: x509.Certificate) -> None:
    """RFC 3161 2.3: the TSA certificate's EKU is critical and holds id-kp-timeStamping.

    (That it holds nothing else, as 2.3 also asks, OpenSSL's timestamp-signing purpose check
    enforces inside rfc3161-client's signature verification.)
    """
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        raise ChainError(
            f"TSA certificate {subject(cert)} has no extended key usage (needs timeStamping)"
        ) from None
    if ExtendedKeyUsageOID.TIME_STAMPING not in eku.value:
        raise ChainError(f"TSA certificate {subject(cert)} is not for timeStamping")
    if not eku.critical:
        raise ChainError(f"TSA certificate {subject(cert)}: its timeStamping EKU is not critical")


def _root_of(last: x509.Certificate, trusted: list[x509.Certificate]) -> x509.Certificate:
    """The self-signed root the chain ends at: `last` itself, or a trusted root that issued it."""
    if _is_self_signed(last):
        return last
    for root in trusted:
        if _issued_by(last, root):
            return root
    tail = " nor issued by a trusted root" if trusted else " (chain_pem must end at its root)"
    raise ChainError(f"chain ends at {subject(last)}, which is not self-signed{tail}")


def _check_valid_at(cert: x509.Certificate, when: dt.datetime) -> None:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if not start <= when <= end:
        raise ChainError(
            f"certificate {subject(cert)} is not valid at the stamp time {when.isoformat()} "
            f"(valid {start.isoformat()} to {end.isoformat()})"
        )


def verify_chain(
    chain: list[x509.Certificate], at: dt.datetime, trusted_roots: list[x509.Certificate] | None
) -> VerifiedChain:
    """Check `chain` (TSA certificate first) links up to a self-signed root valid at `at`.

    With `trusted_roots`, the root must be one of them (compared by DER); without, the root is
    the chain's own last certificate and trusting it is the reader's decision.
    """
    for i, (child, parent) in enumerate(zip(chain[:-1], chain[1:], strict=True)):
        if not _issued_by(child, parent):
            raise ChainError(
                f"chain certificate {i} ({subject(child)}) is not signed by certificate "
                f"{i + 1} ({subject(parent)})"
            )
        if not _is_ca(parent):
            raise ChainError(f"chain certificate {i + 1} ({subject(parent)}) is not a CA")
    root = _root_of(chain[-1], trusted_roots or [])
    if root is not chain[-1] and not _is_ca(root):
        raise ChainError(f"root {subject(root)} is not a CA")
    if len(chain) == 1 and root is chain[0]:
        raise ChainError("chain_pem holds only a self-signed certificate; a TSA needs a CA")
    der = root.public_bytes(serialization.Encoding.DER)
    if trusted_roots is not None and all(
        der != t.public_bytes(serialization.Encoding.DER) for t in trusted_roots
    ):
        fp = root.fingerprint(hashes.SHA256()).hex()
        raise ChainError(f"root {subject(root)} (sha256 {fp}) is not among the trusted roots")
    for cert in [*chain, root] if root is not chain[-1] else chain:
        _check_valid_at(cert, at)
    intermediates = tuple(chain[1:-1] if root is chain[-1] else chain[1:])
    return VerifiedChain(tsa=chain[0], intermediates=intermediates, root=root)
