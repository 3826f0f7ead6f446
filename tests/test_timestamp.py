"""RFC 3161 timestamps: an honest round trip through a local openssl TSA, and every tamper class
a verifier must refuse, each with a message naming the problem."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.server
import re
import shutil
import socket
import subprocess
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from harness.protocol.local_tsa import (
    LOCAL_CA_NAME,
    LOCAL_TSA_NAME,
    LOCAL_TSA_POLICY,
    LocalTSA,
    issue_certificate,
)
from harness.protocol.timestamp import (
    TimestampError,
    TimestampRecord,
    record_from_reply,
    request_from_tsa,
    timestamp_request,
    verify_record,
    verify_reply,
)

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="the local test TSA needs the openssl command"
)

DIGEST = hashlib.sha256(b"tdp commitment under test").hexdigest()
OTHER_DIGEST = hashlib.sha256(b"another commitment").hexdigest()


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> LocalTSA:
    return LocalTSA.create(tmp_path_factory.mktemp("tsa") / "a")


@pytest.fixture(scope="module")
def other_tsa(tmp_path_factory: pytest.TempPathFactory) -> LocalTSA:
    return LocalTSA.create(tmp_path_factory.mktemp("tsa") / "b")


@pytest.fixture(scope="module")
def honest(tsa: LocalTSA) -> tuple[bytes, bytes, TimestampRecord]:
    request = timestamp_request(DIGEST)
    reply = tsa.stamp(request)
    return request, reply, record_from_reply(reply, DIGEST, tsa.chain_pem, request, "local")


def _cert(pem: bytes, i: int = 0) -> x509.Certificate:
    return x509.load_pem_x509_certificates(pem)[i]


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _key(path: Path):
    return serialization.load_pem_private_key(path.read_bytes(), None)


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def _with_token(record: TimestampRecord, reply: bytes) -> TimestampRecord:
    return replace(record, token=base64.b64encode(reply).decode())


# --- the honest path ---------------------------------------------------------------------


def test_honest_round_trip(tsa: LocalTSA, honest) -> None:
    _, _, record = honest
    again = TimestampRecord.from_dict(record.to_dict())
    assert again == record
    info = verify_record(again, DIGEST)
    now = dt.datetime.now(dt.timezone.utc)
    assert abs((now - info.gen_time).total_seconds()) < 120
    assert info.gen_time.tzinfo is not None and info.gen_time.microsecond == 0
    assert info.accuracy_s == 1.0  # what the local TSA declares
    assert info.latest == info.gen_time + dt.timedelta(seconds=2)  # + 1 s resolution + accuracy
    assert info.tsa_subject == f"CN={LOCAL_TSA_NAME}"
    assert info.root_subject == f"CN={LOCAL_CA_NAME}"
    assert (
        info.root_sha256
        == hashlib.sha256(_cert(tsa.root_pem).public_bytes(serialization.Encoding.DER)).hexdigest()
    )
    assert info.policy == LOCAL_TSA_POLICY and info.serial > 0
    assert verify_record(record, DIGEST, trusted_roots_pem=tsa.root_pem) == info


def test_cert_requested_and_uppercase_digest_verify(tsa: LocalTSA) -> None:
    request = timestamp_request(DIGEST.upper(), cert_req=True)
    reply = tsa.stamp(request)
    record = record_from_reply(reply, DIGEST.upper(), tsa.chain_pem, request)
    assert record.digest == DIGEST
    assert verify_record(record, DIGEST).tsa_subject == f"CN={LOCAL_TSA_NAME}"


def test_openssl_agrees(tsa: LocalTSA, honest, tmp_path: Path) -> None:
    """The module docstring's manual check with `openssl ts -verify` passes on our token."""
    _, reply, _ = honest
    (tmp_path / "m").write_bytes(bytes.fromhex(DIGEST))
    (tmp_path / "r.tsr").write_bytes(reply)
    (tmp_path / "root.pem").write_bytes(tsa.root_pem)
    (tmp_path / "tsa.pem").write_bytes(_pem(_cert(tsa.chain_pem)))
    proc = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-data",
            str(tmp_path / "m"),
            "-in",
            str(tmp_path / "r.tsr"),
            "-CAfile",
            str(tmp_path / "root.pem"),
            "-untrusted",
            str(tmp_path / "tsa.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and "Verification: OK" in proc.stdout, proc.stderr


# --- the token's bytes -------------------------------------------------------------------


def test_flipped_signature_byte(honest) -> None:
    _, reply, record = honest
    with pytest.raises(TimestampError, match="signature does not verify"):
        verify_record(_with_token(record, _flip(reply, len(reply) - 1)), DIGEST)


def test_flipped_imprint_byte(honest) -> None:
    _, reply, record = honest
    at = reply.index(hashlib.sha256(bytes.fromhex(DIGEST)).digest()) + 5
    with pytest.raises(TimestampError, match="covers a different message"):
        verify_record(_with_token(record, _flip(reply, at)), DIGEST)


def test_edited_gen_time(honest) -> None:
    """Back-dating by editing the signed genTime breaks the signature."""
    _, reply, record = honest
    stamp = re.search(rb"\d{14}(\.\d+)?Z", reply)
    assert stamp is not None
    at = stamp.start() + 12  # tens of seconds: stays a valid time inside the cert's validity
    digit = reply[at : at + 1]
    earlier = reply[:at] + (b"1" if digit != b"1" else b"0") + reply[at + 1 :]
    with pytest.raises(TimestampError, match="signature does not verify"):
        verify_record(_with_token(record, earlier), DIGEST)


@pytest.mark.parametrize(
    "cut", [lambda r: r[: len(r) // 2], lambda r: r[:-1], lambda r: b"junk", lambda r: r + b"\x00"]
)
def test_truncated_or_garbage_token(honest, cut) -> None:
    _, reply, record = honest
    with pytest.raises(TimestampError, match="not a DER TimeStampResp|malformed"):
        verify_record(_with_token(record, cut(reply)), DIGEST)


def test_rejected_request_is_not_granted(tsa: LocalTSA) -> None:
    reply = tsa.stamp(b"\x30\x03\x02\x01\x01")  # openssl answers a malformed query with rejection
    with pytest.raises(TimestampError, match="did not grant"):
        verify_reply(reply, DIGEST, tsa.chain_pem)


# --- the digest and the request ----------------------------------------------------------


def test_wrong_digest(honest) -> None:
    _, reply, record = honest
    with pytest.raises(TimestampError, match="is for digest .* not the commitment"):
        verify_record(record, OTHER_DIGEST)
    with pytest.raises(TimestampError, match="covers a different message"):
        verify_record(replace(record, digest=OTHER_DIGEST), OTHER_DIGEST)
    with pytest.raises(TimestampError, match="covers a different message"):
        verify_reply(reply, OTHER_DIGEST, record.chain_pem.encode())


def test_reply_to_another_request(tsa: LocalTSA) -> None:
    mine, theirs = timestamp_request(DIGEST), timestamp_request(DIGEST)
    reply = tsa.stamp(theirs)
    assert verify_reply(reply, DIGEST, tsa.chain_pem, request=theirs).serial > 0
    with pytest.raises(TimestampError, match="nonce .* does not match the request nonce"):
        record_from_reply(reply, DIGEST, tsa.chain_pem, request=mine)
    with pytest.raises(TimestampError, match="request was for another digest"):
        record_from_reply(reply, DIGEST, tsa.chain_pem, request=timestamp_request(OTHER_DIGEST))


# --- the certificates --------------------------------------------------------------------


def test_chain_of_another_ca(tsa: LocalTSA, other_tsa: LocalTSA, honest) -> None:
    _, _, record = honest
    with pytest.raises(TimestampError, match="not by the chain's TSA certificate"):
        verify_record(replace(record, chain_pem=other_tsa.chain_pem.decode()), DIGEST)
    mixed = _pem(_cert(tsa.chain_pem), _cert(other_tsa.root_pem))  # same names, other CA key
    with pytest.raises(TimestampError, match="certificate 0 .* is not signed by certificate 1"):
        verify_record(replace(record, chain_pem=mixed.decode()), DIGEST)


def test_lookalike_chain_fails_the_signature(tsa: LocalTSA, other_tsa: LocalTSA, honest) -> None:
    """Another CA with the same names issues a TSA certificate with the same serial."""
    _, _, record = honest
    real = _cert(tsa.chain_pem)
    other_ca = _cert(other_tsa.root_pem)
    fake = issue_certificate(
        LOCAL_TSA_NAME,
        _key(other_tsa.directory / "tsa.key"),
        other_ca,
        _key(other_tsa.directory / "ca.key"),
        real.not_valid_before_utc,
        real.not_valid_after_utc,
        serial=real.serial_number,
    )
    chain = _pem(fake, other_ca).decode()
    with pytest.raises(TimestampError, match="signature does not verify"):
        verify_record(replace(record, chain_pem=chain), DIGEST)


def test_root_not_trusted(tsa: LocalTSA, other_tsa: LocalTSA, honest) -> None:
    _, _, record = honest
    with pytest.raises(TimestampError, match=r"root .* \(sha256 [0-9a-f]{64}\) is not among"):
        verify_record(record, DIGEST, trusted_roots_pem=other_tsa.root_pem)


def test_chain_without_root_needs_trusted_root(tsa: LocalTSA, honest) -> None:
    _, _, record = honest
    leaf_only = replace(record, chain_pem=_pem(_cert(tsa.chain_pem)).decode())
    with pytest.raises(TimestampError, match="not self-signed"):
        verify_record(leaf_only, DIGEST)
    assert verify_record(leaf_only, DIGEST, trusted_roots_pem=tsa.root_pem).root_subject


@pytest.mark.parametrize(
    "eku_critical,problem", [(None, "no extended key usage"), (False, "EKU is not critical")]
)
def test_tsa_certificate_without_timestamping_eku(
    tsa: LocalTSA, honest, eku_critical, problem
) -> None:
    """The TSA's own key and serial, re-certified by its CA without a proper EKU."""
    _, _, record = honest
    real = _cert(tsa.chain_pem)
    bad = issue_certificate(
        LOCAL_TSA_NAME,
        _key(tsa.directory / "tsa.key"),
        _cert(tsa.root_pem),
        _key(tsa.directory / "ca.key"),
        real.not_valid_before_utc,
        real.not_valid_after_utc,
        eku_critical=eku_critical,
        serial=real.serial_number,
    )
    with pytest.raises(TimestampError, match=problem):
        verify_record(replace(record, chain_pem=_pem(bad, _cert(tsa.root_pem)).decode()), DIGEST)


def test_certificate_not_valid_at_gen_time(tmp_path: Path) -> None:
    future = LocalTSA.create(
        tmp_path / "future", not_before=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    )
    reply = future.stamp(timestamp_request(DIGEST))
    with pytest.raises(TimestampError, match="not valid at the stamp time"):
        verify_reply(reply, DIGEST, future.chain_pem)


@pytest.mark.parametrize("chain", [b"", b"not pem", b"-----BEGIN CERTIFICATE-----\nxx\n"])
def test_unreadable_chain(honest, chain: bytes) -> None:
    _, reply, _ = honest
    with pytest.raises(TimestampError, match="chain_pem (holds no|is not a PEM)"):
        verify_reply(reply, DIGEST, chain)


# --- the record as a file holds it -------------------------------------------------------


def test_non_base64_token(honest) -> None:
    _, _, record = honest
    with pytest.raises(TimestampError, match="not base64"):
        replace(record, token="not base64 at all!")
    with pytest.raises(TimestampError, match="not base64"):
        TimestampRecord.from_dict({**record.to_dict(), "token": "é" + record.token})


@pytest.mark.parametrize(
    "edit,problem",
    [
        (lambda d: d.pop("token"), "lacks field 'token'"),
        (lambda d: d.pop("kind"), "lacks field 'kind'"),
        (lambda d: d.update(token=123), "'token' must be str, not int"),
        (lambda d: d.update(chain_pem=None), "'chain_pem' must be str, not NoneType"),
        (lambda d: d.update(tsa_url=5), "'tsa_url' must be str, not int"),
        (lambda d: d.update(digest="abc"), "64 hex characters"),
        (lambda d: d.update(kind="ots"), "unsupported timestamp kind 'ots'"),
        (lambda d: d.update(gen_time="1999-01-01T00:00:00Z"), "unknown field 'gen_time'"),
    ],
)
def test_bad_record_dict(honest, edit, problem) -> None:
    _, _, record = honest
    d = record.to_dict()
    edit(d)
    with pytest.raises(TimestampError, match=problem):
        TimestampRecord.from_dict(d)


def test_record_must_be_an_object() -> None:
    with pytest.raises(TimestampError, match="must be an object, not list"):
        TimestampRecord.from_dict([])


# --- HTTP transport ----------------------------------------------------------------------


def test_request_over_http(tsa: LocalTSA) -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            query = self.rfile.read(int(self.headers["Content-Length"]))
            ok = self.headers["Content-Type"] == "application/timestamp-query"
            body = tsa.stamp(query) if ok else b""
            self.send_response(200 if ok else 415)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/tsr"
        request = timestamp_request(DIGEST)
        record = record_from_reply(
            request_from_tsa(url, request, 10), DIGEST, tsa.chain_pem, request, url
        )
        assert verify_record(record, DIGEST).tsa_subject == f"CN={LOCAL_TSA_NAME}"
    finally:
        server.shutdown()
        server.server_close()


def test_unreachable_tsa() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TimestampError, match="cannot reach the TSA"):
        request_from_tsa(f"http://127.0.0.1:{port}/", timestamp_request(DIGEST), 5)
    with pytest.raises(TimestampError, match="must start with http"):
        request_from_tsa("ftp://example.org/", b"")
