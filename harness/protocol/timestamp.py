"""RFC 3161 timestamps over a commitment: request one, keep it as a record, verify it offline.

A token proves that a time-stamp authority (TSA) saw the commitment no later than the token's
genTime. The stamped message is the commitment's 32 raw bytes; the token's message imprint is
their sha256 (rfc3161-client's request builder hashes what it is given and takes no ready-made
imprint). Checking by hand: ``echo -n $DIGEST | xxd -r -p > m; openssl ts -verify -data m
-in token.tsr -CAfile root.pem -untrusted tsa.pem``.

Trusting a root. Verification proves that the token was signed by the TSA certificate in the
record, that this certificate chains up to a self-signed root, and that nothing was altered. It
cannot prove the root belongs to an honest TSA: anyone can make a root and stamp any time they
like (``local_tsa`` does exactly that for tests). So `TimestampInfo` names the root (subject and
sha256 fingerprint of its DER); whoever reads a report decides whether that root is a TSA they
trust, or passes `trusted_roots_pem` so that any other root fails. Nothing is checked online:
no revocation (CRL/OCSP), no fetching of certificates.

Parsing and the PKCS#7 signature check are rfc3161-client's (Trail of Bits,
https://github.com/trailofbits/rfc3161-client); certificate checks are `cryptography`'s.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any

import rfc3161_client as tsp
from cryptography import x509
from rfc3161_client._rust import parse_timestamp_request  # the package exports no wrapper

from harness.protocol.tsa_chain import (
    ChainError,
    VerifiedChain,
    check_timestamping_eku,
    load_pem_chain,
    verify_chain,
)
from harness.protocol.tsa_chain import subject as cert_subject

__all__ = [
    "KIND",
    "TimestampError",
    "TimestampInfo",
    "TimestampRecord",
    "record_from_reply",
    "request_from_tsa",
    "timestamp_request",
    "verify_record",
    "verify_reply",
]

KIND = "rfc3161"
_SHA256_OID = "2.16.840.1.101.3.4.2.1"
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
#: rfc3161-client drops genTime's fractional seconds: the true time is below gen_time + 1 s
GEN_TIME_RESOLUTION_S = 1.0
_MAX_REPLY = 1 << 20


class TimestampError(ValueError):
    """A timestamp token, request or record is wrong; the message says what."""


def _message(digest_hex: str) -> bytes:
    if not isinstance(digest_hex, str) or not _HEX64.fullmatch(digest_hex):
        shown = str(digest_hex)[:80]
        raise TimestampError(f"digest must be 64 hex characters (a sha256), got {shown!r}")
    return bytes.fromhex(digest_hex)


def _imprint(digest_hex: str) -> bytes:
    return hashlib.sha256(_message(digest_hex)).digest()


@dataclass(frozen=True)
class TimestampRecord:
    """What a canary file stores: the TSA's reply as it came, and the chain to check it with.

    There is deliberately no time field: the time comes only from the verified token.
    """

    kind: str  # "rfc3161"
    digest: str  # hex sha256 commitment whose 32 bytes were stamped
    token: str  # base64 DER TimeStampResp, as the TSA returned it
    chain_pem: str  # TSA certificate first, up to its self-signed root
    tsa_url: str | None = None  # where it came from (informational)

    def __post_init__(self) -> None:
        for name, want in (("kind", str), ("digest", str), ("token", str), ("chain_pem", str)):
            _check_type(name, getattr(self, name), want)
        if self.tsa_url is not None:
            _check_type("tsa_url", self.tsa_url, str)
        if self.kind != KIND:
            raise TimestampError(f"unsupported timestamp kind {self.kind!r} (expected {KIND!r})")
        _message(self.digest)
        _token_der(self.token)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict, read back by `from_dict`."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> TimestampRecord:
        """Read a record, refusing missing, mistyped or unknown fields."""
        if not isinstance(d, dict):
            raise TimestampError(f"timestamp record must be an object, not {type(d).__name__}")
        required, optional = ("kind", "digest", "token", "chain_pem"), ("tsa_url",)
        for name in required:
            if name not in d:
                raise TimestampError(f"timestamp record lacks field {name!r}")
        for name in d:
            if name not in required + optional:
                raise TimestampError(
                    f"timestamp record has unknown field {name!r} (times come only from the "
                    "verified token)"
                )
        return cls(**d)


def _check_type(name: str, value: Any, want: type) -> None:
    if not isinstance(value, want):
        raise TimestampError(
            f"timestamp record field {name!r} must be {want.__name__}, not {type(value).__name__}"
        )


def _token_der(token_b64: str) -> bytes:
    try:
        der = base64.b64decode(token_b64.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as e:
        raise TimestampError(f"timestamp token is not base64 ({e})") from None
    if not der:
        raise TimestampError("timestamp token is empty")
    return der


@dataclass(frozen=True)
class TimestampInfo:
    """What verification established, all from the verified token and chain."""

    gen_time: dt.datetime  # TSA's genTime, UTC, whole seconds (fraction dropped, see latest)
    accuracy_s: float  # TSA-declared accuracy; 0 when the token declares none
    latest: dt.datetime  # gen_time + resolution (1 s) + accuracy: the commitment existed by then
    tsa_subject: str
    root_subject: str
    root_sha256: str  # hex sha256 of the root certificate DER: the identity to trust or not
    serial: int
    policy: str  # TSA policy OID, dotted


def timestamp_request(digest_hex: str, nonce: bool = True, cert_req: bool = False) -> bytes:
    """A DER TimeStampReq over the commitment's bytes (sha256 imprint), with a random nonce.

    `cert_req` is off by default: the chain comes from the record, and rfc3161-client refuses
    tokens whose embedded certificate set is not in DER order, which `openssl ts` (and TSAs
    built on it) produce whenever they embed more than one certificate.
    """
    builder = tsp.TimestampRequestBuilder(nonce=nonce, cert_req=cert_req)
    req = builder.data(_message(digest_hex)).hash_algorithm(tsp.HashAlgorithm.SHA256).build()
    return req.as_bytes()


def request_from_tsa(url: str, request: bytes, timeout_s: float = 30) -> bytes:
    """POST a DER TimeStampReq to a TSA over HTTP(S) (RFC 3161 3.4); returns its raw reply."""
    if not url.startswith(("http://", "https://")):
        raise TimestampError(f"TSA url must start with http:// or https://, got {url!r}")
    post = urllib.request.Request(
        url, data=request, method="POST", headers={"Content-Type": "application/timestamp-query"}
    )
    try:
        with urllib.request.urlopen(post, timeout=timeout_s) as answer:
            reply = answer.read(_MAX_REPLY + 1)
    except urllib.error.HTTPError as e:
        raise TimestampError(f"TSA at {url} answered HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise TimestampError(
            f"cannot reach the TSA at {url} ({e.reason}); timestamping needs the network, "
            "verification does not"
        ) from None
    except TimeoutError:
        raise TimestampError(f"TSA at {url} did not answer within {timeout_s:g} s") from None
    if len(reply) > _MAX_REPLY:
        raise TimestampError(f"TSA at {url} sent more than {_MAX_REPLY} bytes; not a TSA reply")
    return reply


def record_from_reply(
    reply: bytes,
    digest_hex: str,
    chain_pem: bytes,
    request: bytes | None = None,
    tsa_url: str | None = None,
) -> TimestampRecord:
    """Verify a TSA reply (and its nonce against `request`), then keep it as a record."""
    verify_reply(reply, digest_hex, chain_pem, request=request)
    return TimestampRecord(
        kind=KIND,
        digest=digest_hex.lower(),
        token=base64.b64encode(reply).decode("ascii"),
        chain_pem=_pem_text(chain_pem),
        tsa_url=tsa_url,
    )


def _pem_text(chain_pem: bytes) -> str:
    try:
        return chain_pem.decode("utf-8")
    except UnicodeDecodeError:
        raise TimestampError("chain_pem is not text (PEM is ASCII)") from None


def verify_record(
    record: TimestampRecord, digest_hex: str, trusted_roots_pem: bytes | None = None
) -> TimestampInfo:
    """Verify a stored record against the commitment recomputed by the caller."""
    if not isinstance(record, TimestampRecord):
        raise TimestampError(f"expected a TimestampRecord, got {type(record).__name__}")
    if _message(record.digest) != _message(digest_hex):
        raise TimestampError(
            f"timestamp record is for digest {record.digest}, not the commitment {digest_hex}"
        )
    reply = _token_der(record.token)
    return verify_reply(reply, digest_hex, record.chain_pem.encode(), trusted_roots_pem)


@dataclass(frozen=True)
class _Token:
    """The fields of a granted TimeStampResp that verification reads, parsed once."""

    resp: Any  # rfc3161_client TimeStampResponse, for the signature check
    imprint_alg: str
    imprint: bytes
    nonce: int | None
    gen_time: dt.datetime
    accuracy_s: float
    serial: int
    policy: str
    signers: tuple[tuple[Any, int], ...]  # (issuer Name, serial) of each SignerInfo


def _parse_reply(reply: bytes) -> _Token:
    try:
        resp = tsp.decode_timestamp_response(reply)
    except Exception as e:  # noqa: BLE001 - the parser raises ValueError; anything else alike
        raise TimestampError(f"timestamp token is not a DER TimeStampResp ({e})") from None
    if resp.status != tsp.PKIStatus.GRANTED:
        text = "; ".join(resp.status_string) or "no reason given"
        raise TimestampError(f"TSA did not grant the timestamp: status {resp.status} ({text})")
    try:  # the library decodes fields lazily and each can fail its own way on bad bytes
        info = resp.tst_info
        return _Token(
            resp=resp,
            imprint_alg=info.message_imprint.hash_algorithm.dotted_string,
            imprint=info.message_imprint.message,
            nonce=info.nonce,
            gen_time=info.gen_time.astimezone(dt.timezone.utc),
            accuracy_s=_accuracy_s(info.accuracy),
            serial=int(info.serial_number),
            policy=info.policy.dotted_string,
            signers=tuple((s.issuer, s.serial_number) for s in resp.signed_data.signer_infos),
        )
    except Exception as e:  # noqa: BLE001 - any decoding failure means a malformed token
        raise TimestampError(f"timestamp token is malformed ({type(e).__name__}: {e})") from None


def _check_imprint(token: _Token, digest_hex: str) -> None:
    if token.imprint_alg != _SHA256_OID:
        raise TimestampError(f"token imprint uses hash {token.imprint_alg}, not sha256")
    if token.imprint != _imprint(digest_hex):
        raise TimestampError(
            f"token covers a different message (imprint {token.imprint.hex()}), "
            f"not the commitment {digest_hex}"
        )


def _check_request(token: _Token, digest_hex: str, request: bytes) -> None:
    try:
        req = parse_timestamp_request(request)
        req_imprint, req_nonce = req.message_imprint.message, req.nonce
    except Exception as e:  # noqa: BLE001 - any decoding failure means a malformed request
        raise TimestampError(f"timestamp request is not a DER TimeStampReq ({e})") from None
    if req_imprint != _imprint(digest_hex):
        raise TimestampError("timestamp request was for another digest than the commitment")
    if req_nonce is not None and token.nonce != req_nonce:
        raise TimestampError(
            f"token nonce {token.nonce} does not match the request nonce {req_nonce}: "
            "a reply to another request"
        )


def _check_signer(token: _Token, tsa_cert: x509.Certificate) -> None:
    if len(token.signers) != 1:
        raise TimestampError(f"token has {len(token.signers)} signers; expected exactly one")
    issuer, serial = token.signers[0]
    if (issuer, serial) != (tsa_cert.issuer, tsa_cert.serial_number):
        raise TimestampError(
            f"token was signed by serial {serial:x} of {issuer.rfc4514_string()}, not by the "
            f"chain's TSA certificate {cert_subject(tsa_cert)} (serial {tsa_cert.serial_number:x})"
        )


def _checked_chain(
    token: _Token, chain_pem: bytes, trusted_roots_pem: bytes | None
) -> VerifiedChain:
    try:
        certs = load_pem_chain(chain_pem)
        trusted = None
        if trusted_roots_pem is not None:
            trusted = load_pem_chain(trusted_roots_pem, "trusted_roots_pem")
        _check_signer(token, certs[0])
        check_timestamping_eku(certs[0])
        return verify_chain(certs, token.gen_time, trusted)
    except ChainError as e:
        raise TimestampError(str(e)) from None


def verify_reply(
    reply: bytes,
    digest_hex: str,
    chain_pem: bytes,
    trusted_roots_pem: bytes | None = None,
    request: bytes | None = None,
) -> TimestampInfo:
    """Verify a DER TimeStampResp over the commitment; returns what the token establishes.

    Order: granted; sha256 imprint of the commitment; nonce (with `request`); one signer, the
    chain's first certificate; its critical timeStamping EKU; the chain up to a (trusted) root,
    every certificate valid at genTime; then the CMS signature through OpenSSL.
    """
    token = _parse_reply(reply)
    _check_imprint(token, digest_hex)
    if request is not None:
        _check_request(token, digest_hex, request)
    chain = _checked_chain(token, chain_pem, trusted_roots_pem)
    verifier = tsp.VerifierBuilder(
        tsa_certificate=chain.tsa, intermediates=list(chain.intermediates), roots=[chain.root]
    ).build()
    try:
        verifier.verify(token.resp, _imprint(digest_hex))
    except Exception as e:  # noqa: BLE001 - whatever the library raises, the token is not good
        raise TimestampError(f"token signature does not verify: {e}") from None
    return TimestampInfo(
        gen_time=token.gen_time,
        accuracy_s=token.accuracy_s,
        latest=token.gen_time + dt.timedelta(seconds=GEN_TIME_RESOLUTION_S + token.accuracy_s),
        tsa_subject=cert_subject(chain.tsa),
        root_subject=cert_subject(chain.root),
        root_sha256=chain.root_sha256,
        serial=token.serial,
        policy=token.policy,
    )


def _accuracy_s(accuracy: Any) -> float:
    if accuracy is None:
        return 0.0
    return (accuracy.seconds or 0) + (accuracy.millis or 0) / 1e3 + (accuracy.micros or 0) / 1e6
