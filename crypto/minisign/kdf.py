"""The scrypt key stream that protects a minisign secret key.

minisign stores libsodium's two "simplified" work parameters, ``opslimit``
and ``memlimit``, in the key file and calls
``crypto_pwhash_scryptsalsa208sha256``, which turns them into scrypt's
``(N, r, p)``. We reproduce that mapping exactly (:func:`scrypt_parameters`),
then refuse parameters beyond our work limits *before* deriving anything, so a
hostile key file cannot make us allocate gigabytes or spin for minutes.

The derived bytes are XORed over the key id, secret key and checksum. The
salt is random per encryption, so the key stream is never reused.
"""

from __future__ import annotations

from dataclasses import dataclass

from nacl.bindings import crypto_pwhash_scryptsalsa208sha256_ll

from .errors import KdfParametersError

SALT_BYTES = 32

# libsodium's crypto_pwhash_scryptsalsa208sha256_{OPS,MEM}LIMIT_SENSITIVE:
# what `minisign -G` uses (N = 2^20, r = 8, p = 1: 1 GiB of memory).
OPSLIMIT_SENSITIVE = 33_554_432
MEMLIMIT_SENSITIVE = 1_073_741_824

# Our limits: about twice minisign's own default, never more. Memory counts
# both of scrypt's arrays (V: 128*r*(N+2) bytes, B: 128*r*p bytes); work is
# N * p ROMix passes (r is always 8 here).
MAX_LOG2_N = 20
MAX_MEMORY_BYTES = (1 << 30) + (1 << 20)
MAX_WORK = 1 << 21


@dataclass(frozen=True)
class ScryptParameters:
    log2_n: int
    r: int
    p: int

    @property
    def n(self) -> int:
        return 1 << self.log2_n

    @property
    def memory_bytes(self) -> int:
        return 128 * self.r * (self.n + 2) + 128 * self.r * self.p


def scrypt_parameters(opslimit: int, memlimit: int) -> ScryptParameters:
    """Map libsodium's ``(opslimit, memlimit)`` to scrypt's ``(N, r, p)``.

    The rules of libsodium's ``pickparams`` (crypto_pwhash_scryptsalsa208sha256),
    in our own words:

    1. ``opslimit`` is raised to at least 32768; ``r`` is always 8.
    2. If ``opslimit < memlimit // 32`` (time is the tighter bound): ``p = 1``
       and ``log2 N`` is the smallest n >= 1 with ``2^n > (opslimit // (4r)) // 2``.
    3. Otherwise (memory is the tighter bound): ``log2 N`` is the smallest
       n >= 1 with ``2^n > (memlimit // (128r)) // 2``, and
       ``p = min((opslimit // 4) // N, 2^30 - 1) // r``.

    In both cases ``log2 N`` stops at 63. Integer division throughout.
    """
    if not (0 <= opslimit < 2**64 and 0 <= memlimit < 2**64):
        raise KdfParametersError("scrypt limits are unsigned 64-bit integers")
    opslimit = max(opslimit, 32768)
    r = 8
    if opslimit < memlimit // 32:
        p = 1
        log2_n = _smallest_log2_above((opslimit // (4 * r)) // 2)
    else:
        log2_n = _smallest_log2_above((memlimit // (128 * r)) // 2)
        max_rp = min((opslimit // 4) // (1 << log2_n), 0x3FFFFFFF)
        p = max_rp // r
    return ScryptParameters(log2_n=log2_n, r=r, p=p)


def _smallest_log2_above(bound: int) -> int:
    """The smallest n in [1, 63] with 2^n > bound (63 if there is none)."""
    return min(max(bound.bit_length(), 1), 63)


def check_limits(params: ScryptParameters) -> None:
    """Refuse parameters that libsodium cannot run or that exceed our work limits."""
    if params.p < 1:
        raise KdfParametersError("the key file's scrypt parameters give p = 0")
    if params.log2_n > MAX_LOG2_N:
        raise KdfParametersError(
            f"the key file asks for scrypt N = 2^{params.log2_n}; the limit is 2^{MAX_LOG2_N}"
        )
    if params.memory_bytes > MAX_MEMORY_BYTES or params.n * params.p > MAX_WORK:
        raise KdfParametersError("the key file's scrypt work factor is beyond our limit")


def key_stream(passphrase: bytes, salt: bytes, opslimit: int, memlimit: int, length: int) -> bytes:
    """Derive ``length`` bytes of key stream, as minisign does, within our limits."""
    if len(salt) != SALT_BYTES:
        raise KdfParametersError(f"the scrypt salt must be {SALT_BYTES} bytes")
    params = scrypt_parameters(opslimit, memlimit)
    check_limits(params)
    return crypto_pwhash_scryptsalsa208sha256_ll(
        passphrase,
        salt,
        params.n,
        params.r,
        params.p,
        dklen=length,
        maxmem=params.memory_bytes + (1 << 20),
    )
