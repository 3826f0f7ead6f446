"""A local test time-stamp authority (RFC 3161) for tests and the offline demo.

It wraps `openssl ts -reply` (OpenSSL's reference TSA) around a throw-away CA and TSA
certificate made here with `cryptography`. Its tokens are genuine RFC 3161 tokens, but the
time in them is this machine's clock and its root is made on the spot: they prove nothing to
anyone else. Both certificate subjects say so, and reports name that root.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from canaries.files import atomic_write_bytes, atomic_write_text

LOCAL_TSA_NAME = "tdp local test TSA - not a trusted timestamp authority"
LOCAL_CA_NAME = "tdp local test CA - not a trusted certificate authority"
#: the policy OID openssl's own example TSA configuration uses; meaningless outside tests
LOCAL_TSA_POLICY = "1.2.3.4.1"

_CONFIG = """\
[ tsa ]
default_tsa = local_tsa

[ local_tsa ]
serial = {dir}/serial
crypto_device = builtin
signer_cert = {dir}/tsa.pem
signer_key = {dir}/tsa.key
signer_digest = sha256
default_policy = {policy}
digests = sha256, sha384, sha512
accuracy = secs:1
clock_precision_digits = 3
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


class LocalTSAError(RuntimeError):
    """The local test TSA cannot be created or cannot answer (e.g. openssl is missing)."""


def openssl_path() -> str:
    """The openssl executable, or a LocalTSAError saying it is missing."""
    path = shutil.which("openssl")
    if path is None:
        raise LocalTSAError(
            "the local test TSA needs the openssl command-line tool (apt-get install openssl)"
        )
    return path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def issue_certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
    eku_critical: bool | None = True,
    serial: int | None = None,
) -> x509.Certificate:
    """A CA certificate (issuer None: self-signed) or a TSA certificate issued by `issuer`.

    A TSA certificate carries the extended key usage timeStamping, critical as RFC 3161 2.3
    asks; tests pass `eku_critical` False or None (no EKU) and a chosen `serial` to build
    certificates a verifier must refuse.
    """
    is_ca = issuer is None
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(subject) if is_ca else issuer.subject)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=0 if is_ca else None), True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if is_ca:
        usage = dict(key_cert_sign=True, crl_sign=True, digital_signature=False)
    else:
        usage = dict(key_cert_sign=False, crl_sign=False, digital_signature=True)
        if eku_critical is not None:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=eku_critical
            )
    builder = builder.add_extension(
        x509.KeyUsage(
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            encipher_only=False,
            decipher_only=False,
            **usage,
        ),
        critical=True,
    )
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass(frozen=True)
class LocalTSA:
    """A throw-away TSA living in `directory` (CA and TSA keys, certificates, openssl config)."""

    directory: Path

    @classmethod
    def create(
        cls, directory: str | Path, not_before: dt.datetime | None = None, days: int = 30
    ) -> LocalTSA:
        """Make a fresh CA and TSA certificate valid from `not_before` (default: an hour ago)."""
        openssl_path()
        directory = Path(directory).resolve()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if (directory / "tsa.cnf").exists():
            raise LocalTSAError(f"{directory} already holds a local TSA; use LocalTSA(directory)")
        start = not_before or dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
        end = start + dt.timedelta(days=days)
        ca_key, tsa_key = (
            ec.generate_private_key(ec.SECP256R1()),
            ec.generate_private_key(ec.SECP256R1()),
        )
        ca = issue_certificate(LOCAL_CA_NAME, ca_key, None, ca_key, start, end)
        tsa = issue_certificate(LOCAL_TSA_NAME, tsa_key, ca, ca_key, start, end)
        atomic_write_bytes(directory / "ca.key", _key_pem(ca_key), mode=0o600)
        atomic_write_bytes(directory / "tsa.key", _key_pem(tsa_key), mode=0o600)
        atomic_write_bytes(directory / "ca.pem", _pem(ca))
        atomic_write_bytes(directory / "tsa.pem", _pem(tsa))
        atomic_write_text(directory / "serial", "01\n", mode=0o600)
        config = _CONFIG.format(dir=directory, policy=LOCAL_TSA_POLICY)
        atomic_write_text(directory / "tsa.cnf", config)
        return cls(directory)

    @property
    def chain_pem(self) -> bytes:
        """The TSA certificate then the self-signed CA certificate, PEM."""
        return (self.directory / "tsa.pem").read_bytes() + (self.directory / "ca.pem").read_bytes()

    @property
    def root_pem(self) -> bytes:
        """The self-signed CA certificate alone, PEM (to pass as a trusted root)."""
        return (self.directory / "ca.pem").read_bytes()

    def stamp(self, request_der: bytes) -> bytes:
        """Answer a DER TimeStampReq with a DER TimeStampResp (as `openssl ts -reply` makes it).

        Only the TSA certificate is embedded (when asked): openssl writes a set of several
        certificates unsorted, which strict DER parsers such as rfc3161-client refuse.
        """
        if not (self.directory / "tsa.cnf").is_file():
            raise LocalTSAError(f"{self.directory} holds no local TSA (run LocalTSA.create)")
        with tempfile.NamedTemporaryFile(dir=self.directory, suffix=".tsq") as query:
            query.write(request_der)
            query.flush()
            proc = subprocess.run(
                [
                    openssl_path(),
                    "ts",
                    "-reply",
                    "-config",
                    str(self.directory / "tsa.cnf"),
                    "-queryfile",
                    query.name,
                ],
                capture_output=True,
                timeout=60,
                check=False,
            )
        if proc.returncode != 0 or not proc.stdout:
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            raise LocalTSAError(f"openssl ts -reply failed: {err[-1] if err else 'no output'}")
        return proc.stdout
