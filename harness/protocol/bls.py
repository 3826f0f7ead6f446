"""BLS12-381 signature checks for drand beacons, on py_ecc (pure Python, Ethereum Foundation).

Two layouts: signatures on G1 with keys on G2 (drand quicknet, `bls-unchained-g1-rfc9380`) and
signatures on G2 with keys on G1 (League of Entropy default, `pedersen-bls-chained`). A message is
hashed to the signature's group with RFC 9380 hash_to_curve (expand_message_xmd with SHA-256,
SSWU, random-oracle variant). Points use the ZCash compressed encoding (48 bytes on G1, 96 on G2),
as drand serialises them. Every decoded point is checked to be in the prime-order subgroup and not
the identity (an identity key with an identity signature would "verify" any message).
"""

from __future__ import annotations

import hashlib
import secrets
import sys

# py_ecc raises the interpreter's recursion limit to 100,000 when imported (py_ecc/__init__.py),
# process-wide; with it, any deeply nested input (e.g. JSON posted to `tdp serve`) overflows the C
# stack of a thread and kills the process instead of raising RecursionError. Nothing here recurses
# deeply (optimized_bls12_381 is iterative; measured with the default limit on every test vector),
# so the limit is put back as it was.
_RECURSION_LIMIT = sys.getrecursionlimit()
from py_ecc.bls.hash import i2osp, os2ip  # noqa: E402
from py_ecc.bls.hash_to_curve import hash_to_G1, hash_to_G2  # noqa: E402
from py_ecc.bls.point_compression import (  # noqa: E402
    compress_G1,
    compress_G2,
    decompress_G1,
    decompress_G2,
)
from py_ecc.optimized_bls12_381 import (  # noqa: E402
    FQ12,
    G1,
    G2,
    curve_order,
    final_exponentiate,
    is_inf,
    multiply,
    neg,
    pairing,
)

sys.setrecursionlimit(_RECURSION_LIMIT)

#: suite tags of draft-irtf-cfrg-bls-signature (NUL = basic scheme); drand hashes to the group the
#: signature lives on with that group's tag (drand/drand crypto/schemes.go, NewBLS12381SuiteWithDST)
DST_G1 = b"BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_NUL_"
DST_G2 = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_NUL_"
G1_BYTES = 48
G2_BYTES = 96


class PointError(ValueError):
    """Bytes that are no usable point: wrong length, off the curve, identity, wrong subgroup."""


def _checked(point, what: str):
    if is_inf(point):
        raise PointError(f"{what} is the point at infinity")
    if not is_inf(multiply(point, curve_order)):
        raise PointError(f"{what} is not in the prime-order subgroup")
    return point


def g1_point(data: bytes, what: str = "G1 point"):
    """Decode a compressed G1 point (48 bytes), subgroup-checked."""
    if len(data) != G1_BYTES:
        raise PointError(f"{what} must be {G1_BYTES} bytes (compressed G1), got {len(data)}")
    try:
        point = decompress_G1(os2ip(data))
    except ValueError as e:
        raise PointError(f"{what} is not a point on G1 ({e})") from None
    return _checked(point, what)


def g2_point(data: bytes, what: str = "G2 point"):
    """Decode a compressed G2 point (96 bytes), subgroup-checked."""
    if len(data) != G2_BYTES:
        raise PointError(f"{what} must be {G2_BYTES} bytes (compressed G2), got {len(data)}")
    try:
        point = decompress_G2((os2ip(data[:48]), os2ip(data[48:])))
    except ValueError as e:
        raise PointError(f"{what} is not a point on G2 ({e})") from None
    return _checked(point, what)


def verify_sig_on_g1(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """e(sig, g2) == e(H1(message), pk): key on G2, signature on G1 (drand quicknet)."""
    pk = g2_point(public_key, "public key")
    sig = g1_point(signature, "signature")
    h = hash_to_G1(message, DST_G1, hashlib.sha256)
    # one final exponentiation for both Miller loops: e(-sig, g2) * e(h, pk) == 1
    f = pairing(G2, neg(sig), final_exponentiate=False) * pairing(pk, h, final_exponentiate=False)
    return final_exponentiate(f) == FQ12.one()


def verify_sig_on_g2(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """e(g1, sig) == e(pk, H2(message)): key on G1, signature on G2 (League of Entropy default)."""
    pk = g1_point(public_key, "public key")
    sig = g2_point(signature, "signature")
    h = hash_to_G2(message, DST_G2, hashlib.sha256)
    f = pairing(sig, neg(G1), final_exponentiate=False) * pairing(h, pk, final_exponentiate=False)
    return final_exponentiate(f) == FQ12.one()


def new_secret_key() -> int:
    """A uniformly random nonzero scalar (from the OS's CSPRNG)."""
    return secrets.randbelow(curve_order - 1) + 1


def check_secret_key(sk: int) -> int:
    """`sk` itself if it is a usable secret scalar, else PointError."""
    if isinstance(sk, bool) or not isinstance(sk, int) or not 0 < sk < curve_order:
        raise PointError("secret key must be an integer in [1, curve order)")
    return sk


def public_key_on_g2(sk: int) -> bytes:
    """Compressed G2 public key of `sk` (the key layout of quicknet)."""
    z1, z2 = compress_G2(multiply(G2, check_secret_key(sk)))
    return i2osp(z1, 48) + i2osp(z2, 48)


def sign_on_g1(sk: int, message: bytes) -> bytes:
    """Compressed G1 signature sk * H1(message) (the signature layout of quicknet)."""
    h = hash_to_G1(message, DST_G1, hashlib.sha256)
    return i2osp(compress_G1(multiply(h, check_secret_key(sk))), G1_BYTES)
