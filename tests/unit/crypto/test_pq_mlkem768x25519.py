"""Unit tests of the ``mlkem768x25519`` hybrid recipient: keys, stanza shape, failure kinds.

The whole-file behaviour (all 19 hybrid CCTV vectors through the public
decrypt) is in test_pq_cctv_vectors.py; the third-party interop in
tests/interop/test_pq_node_interop.py.
"""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from evidence_intake.crypto.age import bech32
from evidence_intake.crypto.age import mlkem768x25519 as pq
from evidence_intake.crypto.age.stanza import Identity, Recipient, Stanza
from evidence_intake.crypto.errors import CryptoError, HeaderError, KeyFormatError

# The example key pair printed in the C2SP age specification (c2sp.org/age,
# "The MLKEM768-X25519 (i.e. X-Wing) hybrid post-quantum recipient type").
SPEC_IDENTITY = "AGE-SECRET-KEY-PQ-1XX76JRALNLXDMEW0CRK45QMCCH4X06SE84UN3VPM33W6HWDX0H3SK3ZQFR"
SPEC_RECIPIENT = (
    "age1pq1x34nzsvr0rxjsgdn8zgyhfe8j7ceq5r9rdelkjuh3y235jzxshfg87pzf5zrqtzdxz95paef6caq5aapdmwjjq"
    "pjfdyxnzr2zampc3uxy0dg4z2n2gm9su72p0pc3u0jvev55l694v78snxg3yzvcl7yda0eyytqj6a0ec477lnhcy5hzpz"
    "4zq3pxanve4cn62gqj3pjy5lqj9c6kyj4v2z8alktn8zh99970x79gjkv7522hv9kfz35zsnxhsx8wwtmu9cy3ftzjgwc"
    "p4sshn3llnylnpdsyz5jm72vefv4x5vfwytrefxg4wq3mv42wcrvkj742479zrxzpvp2p3e9fed9f0739vcu80r7ma28q"
    "fhnvlv4gfzel9q654dj3zmuvvz893azhxdvs9fxd0r7jzchzcfcs5mkyyjxhw0n2z6dvp9yn9qfdp29h0azxqyjw6v7fh"
    "yuzj7zel0uq6j9rd7wgrpz7mf5dnj43jwsgvrc8qcnhy7tu6dkdujuxzkp9xj43xe8h92ktre2a3u3s8mm5mrp9nr9pwk"
    "gtz4mdlq9hgn4fps4k57ff6wddn2fy23t47sm20r8km8sd2pcyyafnet8f0dajsrlyjeah4n3mssr6aseevuuskdvq5lz"
    "guyvpgwpta742c6698vgutzqgny8usfg0w2he7kq5vyxjd0f9hqg8xk26y9e4th0gezq92q4cpp5p2y9hf5f2cje5l0c3"
    "sa3a2qxmm38pxxvhxh99yzmfz0zk7r2s64nnwjhkfgfr3gf8xnmppcgmaykvh5sh6g7vk9790rf8ws0axmr2t7z8aae5f"
    "q2029uvcn2ghgt4fu4wgwdc0k0cz52qkvwmuzj8p8k5jgf3xzk5zmrkavjekjrpeq408xz3zxazwkc6tyfmhayrkfpjhw"
    "tz5mp8j8guqe43k2q6m2kte03vrw27y3wmqyu5etmt9dnkwcnnpmu9gz9dekfhdevf42ucshphnrk38ra6hx8w5f8q5ru"
    "0xdhrjxmwqf6cused7zc5xvq43r0zscjglpwlptpwydhqw64xz7ptjdyeyzpq2zkxtmzg29gzjpvzva4d3l0cenn9xs29"
    "7wf4y4ukwrunf57xj6pm7nvrkwvtrt8hwcmgv8x7ajw7258ugf9wvkmk4052ekg87tw5vnx8nq2swyzv77v8yqlwsenva"
    "mr0zssknwts8rrhfuwj7ykysnq9jxy0uv3kuyt22djszjdtvpz6d0s0kwh8ryynddzud92emeyvvyqktd0jtj7rvvg5gc"
    "h25v8smlvny3kvn5gagyz475ze2y6q466xqmz2n3hs77lddeqyta2nch5k2u5yacuk9ywnwfdzvyejnucz724hj77hrrma"
    "km7pr3kxsrxq22ejexlud9fy2kdqmkg5yncz7jm5wv2qjk5w5kvcpqsry2yqffh2la52dxfjkjq5rzhjzeyn6dupn0qwt"
    "yv7s4lwg3xdarsdlwe2y3tujy480y7z39q259fzx6jhd2j0f5hagqpcpees7hzc2yrk5cy788uk3s7qvp5cpepx24gvws3"
    "m2g433exgwppnkjscec8qu4y9z9r7vccexjcjaen42245lmgmxmuavg9alej92322gvvyy2t6267v09ch64y0m53jff0vj"
    "j96s0ypk60hr3jw4myd6m5hpn3xjstx7tl2szhpr5qe8jj08ydjc4wy2rch2fhuy3pdfjax5awe9j99ly5hkntzz9fe5za"
    "tgjvzdd0kgtxs25njnajyf6ssekp7gelxquusn4pt25czh3scj68kq79wdn5tgm6yvm9nzavrg043x3msnygf8dweknw5j"
    "mqd0uvny6ttsn09508k0c55zfnegrm9efhxpfqdkmhh6gjtqmwze9pyyzk3tlhl53k2ykx3qheyty7saeq0d3fzv49zc0k"
)

FILE_KEY = b"YELLOW SUBMARINE"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture(scope="module")
def identity() -> pq.HybridIdentity:
    return pq.HybridIdentity(hashlib.sha256(b"unit-test identity, not a real key").digest())


@pytest.fixture(scope="module")
def stanza(identity: pq.HybridIdentity) -> Stanza:
    (only,) = identity.recipient.wrap(FILE_KEY)
    return only


# --- keys and their encodings -------------------------------------------------------------


def test_spec_example_identity_gives_spec_example_recipient() -> None:
    identity = pq.parse_pq_identity(SPEC_IDENTITY)
    assert str(identity.recipient) == SPEC_RECIPIENT
    assert pq.parse_pq_recipient(SPEC_RECIPIENT) == identity.recipient


def test_seed_expansion_is_shake256_split_into_mlkem_seed_and_x25519_scalar() -> None:
    from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

    seed = bytes(range(32))
    expanded = hashlib.shake_256(seed).digest(96)
    expected = (
        mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64]).public_key().public_bytes_raw()
        + x25519.X25519PrivateKey.from_private_bytes(expanded[64:]).public_key().public_bytes_raw()
    )
    assert pq.HybridIdentity(seed).recipient.public_bytes == expected


def test_encodings_round_trip_and_have_the_spec_prefixes() -> None:
    identity = pq.generate_identity()
    text = str(identity)
    assert text.startswith("AGE-SECRET-KEY-PQ-1")
    assert text == text.upper()
    recipient_text = str(identity.recipient)
    assert recipient_text.startswith("age1pq1")
    assert recipient_text == recipient_text.lower()
    assert str(pq.parse_pq_identity(text)) == text
    assert str(pq.parse_pq_recipient(recipient_text)) == recipient_text
    assert len(identity.recipient.public_bytes) == pq.PUBLIC_KEY_SIZE == 1216


def test_generated_identities_differ() -> None:
    assert str(pq.generate_identity()) != str(pq.generate_identity())


def test_types_satisfy_the_age_interfaces(identity: pq.HybridIdentity) -> None:
    assert isinstance(identity, Identity)
    assert isinstance(identity.recipient, Recipient)
    assert identity.recipient.labels == frozenset({"postquantum"})


@pytest.mark.parametrize(
    "text",
    [
        SPEC_RECIPIENT.upper(),  # the spec writes recipients in lower case
        "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj",  # classical X25519
        SPEC_RECIPIENT[:-1] + ("q" if SPEC_RECIPIENT[-1] != "q" else "p"),  # bad checksum
        bech32.encode("age1pq", bytes(1215)),  # one byte short
        bech32.encode("age1pq", bytes(1217)),  # one byte long
        bech32.encode("age1pqx", bytes(1216)),  # another HRP with the same prefix
        "",
    ],
)
def test_malformed_recipients_are_refused(text: str) -> None:
    with pytest.raises(KeyFormatError):
        pq.parse_pq_recipient(text)


def test_recipient_with_invalid_mlkem_key_is_refused() -> None:
    # 0xFF bytes decode to 12-bit coefficients of 4095 > q = 3329: FIPS 203's
    # modulus check must refuse the encapsulation key.
    valid = pq.HybridIdentity(bytes(32)).recipient.public_bytes
    with pytest.raises(KeyFormatError):
        pq.HybridRecipient(b"\xff" * 1184 + valid[1184:])


def test_recipient_with_low_order_x25519_key_is_refused() -> None:
    valid = pq.HybridIdentity(bytes(32)).recipient.public_bytes
    with pytest.raises(KeyFormatError):
        pq.HybridRecipient(valid[:1184] + bytes(32))


@pytest.mark.parametrize(
    "text",
    [
        SPEC_IDENTITY.lower(),  # the spec writes identities in upper case
        "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX",  # X25519
        bech32.encode("AGE-SECRET-KEY-PQ-", bytes(31)),
        bech32.encode("AGE-SECRET-KEY-PQ-", bytes(33)),
        bech32.encode("AGE-SECRET-KEY-PQ-X", bytes(32)),
    ],
)
def test_malformed_identities_are_refused(text: str) -> None:
    with pytest.raises(KeyFormatError):
        pq.parse_pq_identity(text)


def test_key_errors_and_repr_never_show_the_secret(identity: pq.HybridIdentity) -> None:
    secret = str(identity)
    assert secret not in repr(identity)
    assert secret[19:40] not in repr(identity)
    with pytest.raises(KeyFormatError) as info:
        pq.parse_pq_identity(secret[:-1] + ("Q" if secret[-1] != "Q" else "P"))
    assert secret[19:40] not in str(info.value)


# --- wrap ---------------------------------------------------------------------------------


def test_wrap_makes_one_stanza_of_the_spec_shape(stanza: Stanza) -> None:
    assert stanza.type == "mlkem768x25519"
    assert len(stanza.args) == 1
    enc = _unb64(stanza.args[0])
    assert len(enc) == pq.ENC_SIZE == 1120
    assert _b64(enc) == stanza.args[0]  # canonical, unpadded
    assert len(stanza.body) == 32


def test_wrap_draws_a_fresh_encapsulation_each_time(identity: pq.HybridIdentity) -> None:
    first = identity.recipient.wrap(FILE_KEY)[0]
    second = identity.recipient.wrap(FILE_KEY)[0]
    assert first.args != second.args
    assert first.body != second.body


@pytest.mark.parametrize("size", [0, 15, 17, 32])
def test_wrap_refuses_a_file_key_of_the_wrong_size(identity: pq.HybridIdentity, size: int) -> None:
    with pytest.raises(CryptoError):
        identity.recipient.wrap(bytes(size))


# --- unwrap -------------------------------------------------------------------------------


def test_unwrap_round_trip(identity: pq.HybridIdentity, stanza: Stanza) -> None:
    assert identity.unwrap([stanza]) == FILE_KEY


def test_unwrap_finds_its_stanza_among_others(identity: pq.HybridIdentity, stanza: Stanza) -> None:
    others = [
        Stanza("X25519", (_b64(os.urandom(32)),), os.urandom(32)),
        *pq.generate_identity().recipient.wrap(FILE_KEY),
        Stanza("grease-stanza", ("a", "b"), b"junk"),
    ]
    assert identity.unwrap([*others, stanza]) == FILE_KEY
    assert identity.unwrap([stanza, *others]) == FILE_KEY


def test_unwrap_returns_none_for_another_identity(stanza: Stanza) -> None:
    assert pq.generate_identity().unwrap([stanza]) is None


def test_unwrap_ignores_other_types_even_if_malformed_for_us(
    identity: pq.HybridIdentity, stanza: Stanza
) -> None:
    # "MUST ignore any stanza that does not have mlkem768x25519 as the first argument".
    assert identity.unwrap([Stanza("MLKEM768X25519", stanza.args, stanza.body)]) is None
    assert identity.unwrap([Stanza("X25519", stanza.args, stanza.body)]) is None
    assert identity.unwrap([]) is None


def test_altered_body_is_no_match_not_an_error(identity: pq.HybridIdentity, stanza: Stanza) -> None:
    body = bytearray(stanza.body)
    body[0] ^= 1
    assert identity.unwrap([Stanza(stanza.type, stanza.args, bytes(body))]) is None


@pytest.mark.parametrize("offset", [0, 1087, 1088, 1119])
def test_altered_enc_is_no_match_not_an_error(
    identity: pq.HybridIdentity, stanza: Stanza, offset: int
) -> None:
    # ML-KEM decapsulation never fails (implicit rejection) and the X25519 share
    # is bound into the combiner, so any change only makes the AEAD open fail.
    enc = bytearray(_unb64(stanza.args[0]))
    enc[offset] ^= 0x02
    assert identity.unwrap([Stanza(stanza.type, (_b64(bytes(enc)),), stanza.body)]) is None


def _malformed(stanza: Stanza) -> dict[str, Stanza]:
    enc = _unb64(stanza.args[0])
    arg = stanza.args[0]
    # 1120 bytes is 1494 base64 characters; the last carries 2 data bits and 4
    # bits that a canonical encoding leaves at zero. Setting one keeps the value.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    non_canonical = arg[:-1] + alphabet[alphabet.index(arg[-1]) | 1]
    assert _unb64(non_canonical) == enc
    return {
        "no argument": Stanza(stanza.type, (), stanza.body),
        "extra argument": Stanza(stanza.type, (arg, "extra"), stanza.body),
        "padded base64": Stanza(stanza.type, (arg + "=",), stanza.body),
        "non-canonical base64": Stanza(stanza.type, (non_canonical,), stanza.body),
        "not base64": Stanza(stanza.type, ("*" + arg[1:],), stanza.body),
        "short enc": Stanza(stanza.type, (_b64(enc[:-1]),), stanza.body),
        "long enc": Stanza(stanza.type, (_b64(enc + b"\x00"),), stanza.body),
        "empty body": Stanza(stanza.type, stanza.args, b""),
        "short body": Stanza(stanza.type, stanza.args, stanza.body[:-1]),
        "long body (a 17-byte file key)": Stanza(stanza.type, stanza.args, stanza.body + b"\x00"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "no argument",
        "extra argument",
        "padded base64",
        "non-canonical base64",
        "not base64",
        "short enc",
        "long enc",
        "empty body",
        "short body",
        "long body (a 17-byte file key)",
    ],
)
def test_malformed_stanza_is_a_header_error(
    identity: pq.HybridIdentity, stanza: Stanza, case: str
) -> None:
    bad = _malformed(stanza)[case]
    with pytest.raises(HeaderError):
        identity.unwrap([bad])
    # Checked before any stanza is opened: the result does not depend on order.
    with pytest.raises(HeaderError):
        identity.unwrap([stanza, bad])


P = 2**255 - 19
# u-coordinates whose X25519 product is zero for every clamped scalar: the
# points of order 1, 2, 4 and 8, their non-canonical encodings (u + p), and the
# same with the ignored top bit set.
_LOW_ORDER_U = [
    0,
    1,
    325606250916557431795983626356110631294008115727848805560023387167927233504,
    39382357235489614581723060781553021112529911719440698176882885853963445705823,
    P - 1,
    P,
    P + 1,
]
LOW_ORDER_POINTS = [u.to_bytes(32, "little") for u in _LOW_ORDER_U] + [
    (u | 1 << 255).to_bytes(32, "little") for u in _LOW_ORDER_U
]


@pytest.mark.parametrize("point", LOW_ORDER_POINTS, ids=lambda p: p.hex()[:8] + "…" + p.hex()[-2:])
def test_low_order_x25519_share_is_a_header_error(
    identity: pq.HybridIdentity, stanza: Stanza, point: bytes
) -> None:
    enc = _unb64(stanza.args[0])
    bad = Stanza(stanza.type, (_b64(enc[:1088] + point),), stanza.body)
    with pytest.raises(HeaderError):
        identity.unwrap([bad])
    with pytest.raises(HeaderError):
        identity.unwrap([stanza, bad])
