"""Sealing a manifest: an Ed25519 signature by a key the user holds, checked offline.

The signature record (`manifest.sig.json`) carries the public key, so anyone can check that the
manifest was signed by *that* key; whether the key is the owner's is a separate fact, settled by
comparing its fingerprint (sha256 of the raw 32-byte public key, `public_key_sha256`) with one
the owner published, or by an X.509 certificate for the key issued by a root the verifier
trusts. Optionally an RFC 3161 token (harness/protocol/timestamp.py) proves when the manifest
existed. Key handling is `cryptography`'s (Ed25519: RFC 8032).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from canaries.files import atomic_write_bytes, check_new_output
from harness.evidence.bundle import sha256

ALGORITHM = "ed25519"
_HEX64 = re.compile(r"[0-9a-f]{64}")


class SigningError(ValueError):
    """A key, certificate or signature cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Signer:
    """A private key and, optionally, an X.509 certificate for its public key."""

    key: Ed25519PrivateKey
    certificate_pem: bytes | None = None

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(self.key.public_key())


def key_fingerprint(public: Ed25519PublicKey) -> str:
    """sha256 hex of the raw 32-byte public key: what a signer publishes and a verifier pins."""
    return sha256(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo)


def write_key(key: Ed25519PrivateKey, path: Path, force: bool = False) -> tuple[Path, Path]:
    """Write the private key (PKCS8 PEM, mode 0600) and `path.pub` beside it."""
    pub = path.with_name(path.name + ".pub")
    check_new_output(path, force, "key file")
    check_new_output(pub, force, "public key file")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    atomic_write_bytes(path, pem, mode=0o600, force=force, what="key file")
    atomic_write_bytes(pub, public_pem(key.public_key()), force=force, what="public key file")
    return path, pub


def load_signer(key_path: Path, cert_path: Path | None = None,
                password: bytes | None = None) -> Signer:
    """An Ed25519 private key (PEM) and an optional certificate that must be for it."""
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password)
    except (ValueError, TypeError) as e:
        raise SigningError(f"{key_path}: not a usable private key ({e})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"{key_path}: an Ed25519 key is needed (`tdp evidence keygen`), "
                           f"not {type(key).__name__}")
    cert_pem = None
    if cert_path is not None:
        cert_pem = cert_path.read_bytes()
        cert = _load_cert(cert_pem, str(cert_path))
        if public_pem(key.public_key()) != _cert_key_pem(cert):
            raise SigningError(f"{cert_path}: the certificate is not for this key")
    return Signer(key, cert_pem)


def _load_cert(pem: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as e:
        raise SigningError(f"{what}: not a PEM certificate ({e})") from None


def _cert_key_pem(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)


def signer_info(signer: Signer) -> dict[str, Any]:
    """What the manifest says about its signer (inside what is signed)."""
    info: dict[str, Any] = {"algorithm": ALGORITHM, "public_key_sha256": signer.fingerprint}
    if signer.certificate_pem is not None:
        info["certificate_subject"] = _load_cert(signer.certificate_pem, "certificate").subject \
            .rfc4514_string()
    return info


def sign(manifest: bytes, signer: Signer) -> bytes:
    """The signature record over the manifest's exact bytes."""
    public = signer.key.public_key()
    record = {
        "algorithm": ALGORITHM,
        "public_key": public_pem(public).decode(),
        "public_key_sha256": key_fingerprint(public),
        "signature": base64.b64encode(signer.key.sign(manifest)).decode(),
        "certificate": signer.certificate_pem.decode() if signer.certificate_pem else None,
    }
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()


@dataclass(frozen=True)
class SignatureInfo:
    """What a valid signature establishes."""

    fingerprint: str
    certificate_subject: str | None


def verify_signature(manifest: bytes, record_bytes: bytes) -> SignatureInfo:
    """Check the signature record over `manifest`; raises SigningError naming what is wrong."""
    try:
        rec = json.loads(record_bytes)
        if rec.get("algorithm") != ALGORITHM:
            raise SigningError(f"unsupported signature algorithm {rec.get('algorithm')!r}")
        public = serialization.load_pem_public_key(rec["public_key"].encode())
        signature = base64.b64decode(rec["signature"], validate=True)
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, KeyError, TypeError,
            ValueError, binascii.Error) as e:
        raise SigningError(f"malformed signature record ({type(e).__name__}: {e})") from None
    if not isinstance(public, Ed25519PublicKey):
        raise SigningError("the signature record's key is not an Ed25519 key")
    try:
        public.verify(signature, manifest)
    except InvalidSignature:
        raise SigningError("the signature does not verify over manifest.json: the manifest was "
                           "changed after signing, or signed by another key") from None
    subject = None
    if rec.get("certificate"):
        cert = _load_cert(rec["certificate"].encode(), "signature certificate")
        if _cert_key_pem(cert) != public_pem(public):
            raise SigningError("the signature record's certificate is not for its key")
        subject = cert.subject.rfc4514_string()
    return SignatureInfo(key_fingerprint(public), subject)


def pinned_fingerprints(values: tuple[str, ...]) -> set[str]:
    """`--signer` values: 64-hex fingerprints, or files holding a public key or certificate."""
    out = set()
    for v in values:
        if _HEX64.fullmatch(v.lower()):
            out.add(v.lower())
            continue
        path = Path(v)
        if not path.is_file():
            raise SigningError(f"--signer {v!r} is neither a 64-hex key fingerprint nor a file")
        data = path.read_bytes()
        if b"BEGIN CERTIFICATE" in data:
            key = _load_cert(data, v).public_key()
        else:
            try:
                key = serialization.load_pem_public_key(data)
            except ValueError as e:
                raise SigningError(f"{v}: not a PEM public key ({e})") from None
        if not isinstance(key, Ed25519PublicKey):
            raise SigningError(f"{v}: not an Ed25519 public key")
        out.add(key_fingerprint(key))
    return out


def check_certificate(record_bytes: bytes, roots_pem: bytes, at: dt.datetime) -> str:
    """The signer's certificate was issued by one of `roots_pem` and valid at `at`."""
    rec = json.loads(record_bytes)
    if not rec.get("certificate"):
        raise SigningError("--trust given, but the bundle is signed without a certificate")
    cert = _load_cert(rec["certificate"].encode(), "signature certificate")
    roots = x509.load_pem_x509_certificates(roots_pem)
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise SigningError(f"the signer's certificate was not valid at {at.isoformat()}")
    for root in roots:
        try:
            cert.verify_directly_issued_by(root)
            return f"certificate {cert.subject.rfc4514_string()} issued by trusted " \
                   f"{root.subject.rfc4514_string()}"
        except (ValueError, TypeError, InvalidSignature):
            continue
    raise SigningError("the signer's certificate was not issued by any --trust root")
