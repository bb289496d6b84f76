"""Each reader's message parses cleanly, carries RFC 8058 unsubscribe headers, and verifies DKIM."""

from __future__ import annotations

import base64
import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import dkim
import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.errors import DeliveryError
from digest.send import (
    DKIMSigner,
    MessageParts,
    build_message,
    list_id_for,
    message_bytes,
    message_id_for,
    safe_filename,
    unsubscribe_mailto,
    wire_message,
)

HTML = "<html><body><p>Bonjour Zoé,</p><p>Le cloud souverain évolue.</p>" + "x" * 500 + "</p>"
TEXT = "Bonjour Zoé,\n\nLe cloud souverain évolue.\n"
SUBJECT = "Veille numérique #3 — données, sécurité et souveraineté du cloud européen"


def args(**over: Any) -> MessageParts:
    base: dict[str, Any] = {
        "html": HTML,
        "text": TEXT,
        "subject": SUBJECT,
        "from_addr": "Veille Numérique <veille@news.example.org>",
        "to_addr": "zoe@example.org",
        "to_name": "Zoé Lefèvre",
        "reply_to": "editors@news.example.org",
        "message_id": "<issue-3.abc@news.example.org>",
        "list_id": list_id_for("Veille numérique", "news.example.org"),
        "unsubscribe_https": "https://news.example.org/unsubscribe/u.k..sig",
        "unsubscribe_mailto": unsubscribe_mailto("veille@news.example.org", "u.k..sig"),
        "date": datetime(2026, 11, 23, 8, 0, tzinfo=UTC),
    }
    base.update(over)
    return MessageParts(**base)


def norm(text: str) -> str:
    """Line ends as the parser gives them back, without the trailing newline the stdlib adds."""
    return text.replace("\r\n", "\n").rstrip("\n")


def parse(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


@pytest.mark.parametrize("fast", [False, True], ids=["build_message", "wire_message"])
def test_message_parses_back_with_both_parts_and_utf8_headers(fast: bool) -> None:
    data = wire_message(args()) if fast else message_bytes(build_message(args()))
    assert b"\r\n" in data
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    assert data.isascii()
    msg = parse(data)
    assert msg["Subject"] == SUBJECT
    assert msg["To"].addresses[0].display_name == "Zoé Lefèvre"
    assert msg["To"].addresses[0].addr_spec == "zoe@example.org"
    assert msg["From"].addresses[0].addr_spec == "veille@news.example.org"
    assert msg["Reply-To"] == "editors@news.example.org"
    assert msg["Message-ID"] == "<issue-3.abc@news.example.org>"
    assert msg["Date"].datetime == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    assert msg["List-Id"] == "Veille numérique <veille-numerique.news.example.org>"
    assert msg.get_content_type() == "multipart/alternative"
    plain, html = list(msg.iter_parts())
    assert plain.get_content_type() == "text/plain"
    assert html.get_content_type() == "text/html"
    assert norm(plain.get_content()) == norm(TEXT)
    assert norm(html.get_content()) == norm(HTML)
    assert plain.get_content_charset() == "utf-8"
    assert not msg.defects


def test_fast_and_reference_builders_agree() -> None:
    a, b = parse(message_bytes(build_message(args()))), parse(wire_message(args()))
    for header in ("From", "To", "Subject", "Date", "Message-ID", "Reply-To", "List-Id"):
        assert str(a[header]) == str(b[header]), header
    assert a["List-Unsubscribe"] == b["List-Unsubscribe"]
    assert a["List-Unsubscribe-Post"] == b["List-Unsubscribe-Post"]
    parts_a = [norm(p.get_content()) for p in a.iter_parts()]
    assert parts_a == [norm(p.get_content()) for p in b.iter_parts()]


@pytest.mark.parametrize("subject", ["Résumé #1", "Veille numérique #1 — 23 novembre 2026"])
def test_short_and_long_accented_subjects_are_encoded_and_read_back(subject: str) -> None:
    data = wire_message(args(subject=subject))
    assert data.isascii()
    assert parse(data)["Subject"] == subject


@pytest.mark.parametrize("fast", [False, True])
def test_list_unsubscribe_is_rfc8058_one_click(fast: bool) -> None:
    data = wire_message(args()) if fast else message_bytes(build_message(args()))
    msg = parse(data)
    # RFC 8058: an https URI in List-Unsubscribe, and exactly this List-Unsubscribe-Post.
    assert msg["List-Unsubscribe"] == (
        "<https://news.example.org/unsubscribe/u.k..sig>, "
        "<mailto:veille@news.example.org?subject=unsubscribe%20u.k..sig>"
    )
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


@pytest.mark.parametrize("fast", [False, True])
def test_without_https_url_there_is_only_the_mailto_and_no_one_click(fast: bool) -> None:
    a = args(unsubscribe_https=None)
    msg = parse(wire_message(a) if fast else message_bytes(build_message(a)))
    assert msg["List-Unsubscribe"].strip().startswith("<mailto:veille@news.example.org?")
    assert msg["List-Unsubscribe-Post"] is None


def test_internationalized_address_goes_through_the_smtputf8_path() -> None:
    data = wire_message(args(to_addr="zoé@exemple.fr"))
    msg = email.message_from_string(data.decode("utf-8"), policy=email.policy.SMTPUTF8)
    assert msg["To"].addresses[0].addr_spec == "zoé@exemple.fr"


def test_an_unusable_from_address_is_named() -> None:
    with pytest.raises(DeliveryError, match=r"delivery\.from"):
        build_message(args(from_addr="nobody"))


def test_message_id_is_stable_per_issue_and_reader_and_hides_the_key() -> None:
    a = message_id_for(b"s", 3, "k" * 32, "news.example.org")
    assert a == message_id_for(b"s", 3, "k" * 32, "news.example.org")
    assert a != message_id_for(b"s", 4, "k" * 32, "news.example.org")
    assert a != message_id_for(b"s", 3, "j" * 32, "news.example.org")
    assert "k" * 8 not in a
    assert a.startswith("<issue-3.")
    assert a.endswith("@news.example.org>")


@pytest.fixture(scope="module")
def dkim_key() -> tuple[bytes, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


def test_dkim_signature_verifies_and_covers_the_unsubscribe_headers(
    dkim_key: tuple[bytes, bytes],
) -> None:
    pem, txt = dkim_key
    signer = DKIMSigner("mail", "news.example.org", pem)
    signed = signer.sign(wire_message(args()))

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"mail._domainkey.news.example.org."
        return txt

    assert dkim.verify(signed, dnsfunc=dnsfunc)
    sig = parse(signed)["DKIM-Signature"]
    signed_headers = {h.strip().lower() for h in sig.split("h=")[1].split(";")[0].split(":")}
    assert {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
    } <= signed_headers


def test_dkim_fails_once_a_signed_header_is_altered(dkim_key: tuple[bytes, bytes]) -> None:
    pem, txt = dkim_key
    signed = DKIMSigner("mail", "news.example.org", pem).sign(wire_message(args()))
    forged = signed.replace(b"Message-ID: <issue-3.abc@", b"Message-ID: <issue-3.abd@")
    assert not dkim.verify(forged, dnsfunc=lambda name, timeout=5: txt)


def test_an_unusable_dkim_key_stops_at_start() -> None:
    with pytest.raises(DeliveryError, match="dkim"):
        DKIMSigner("mail", "news.example.org", b"-----BEGIN RSA PRIVATE KEY-----\nnope\n")


@given(st.emails() | st.text(min_size=1, max_size=300))
def test_outbox_file_names_are_plain_names(address: str) -> None:
    name = safe_filename(address)
    assert "/" not in name
    assert "\\" not in name
    assert not name.startswith(".")
    assert 0 < len(name) <= 170


def test_outbox_file_names_differ_for_different_addresses() -> None:
    names = {safe_filename(a) for a in ["a/b@x.org", "a_b@x.org", "a:b@x.org", "ab@x.org"]}
    assert len(names) == 4


def test_outbox_file_names_follow_the_address_identity_not_case_folding() -> None:
    assert safe_filename("STRASSE@example.org") == safe_filename("strasse@example.org")
    assert safe_filename("straße@example.org") != safe_filename("STRASSE@example.org")


# --------------------------------------------------------------------------- header injection

HEADER_ARGS = {
    "subject": "Subject",
    "from_addr": "From",
    "to_addr": "To",
    "reply_to": "Reply-To",
    "message_id": "Message-ID",
    "list_id": "List-Id",
    "unsubscribe_https": "List-Unsubscribe",
    "unsubscribe_mailto": "List-Unsubscribe",
}


def build(fast: bool, **over: Any) -> bytes:
    if fast:
        return wire_message(args(**over))
    return message_bytes(build_message(args(**over)))


@pytest.mark.parametrize("fast", [True, False], ids=["wire", "stdlib"])
@pytest.mark.parametrize("arg", sorted(HEADER_ARGS))
@pytest.mark.parametrize("breaker", ["\r\n", "\n", "\r", "\x00", "\x0b"])
def test_a_header_value_with_a_line_break_is_refused_by_both_builders(
    fast: bool, arg: str, breaker: str
) -> None:
    value = str(getattr(args(), arg))
    injected = value + f"{breaker}Bcc: x@evil.example"
    with pytest.raises(DeliveryError, match=HEADER_ARGS[arg]):
        build(fast, **{arg: injected})


@pytest.mark.parametrize("fast", [True, False], ids=["wire", "stdlib"])
@pytest.mark.parametrize("to_addr", ["zoe@example.org", "zoé@example.org"])
def test_the_readers_name_is_cleaned_of_line_breaks_in_both_builders(
    fast: bool, to_addr: str
) -> None:
    data = build(fast, to_addr=to_addr, to_name="Evil\r\nBcc: x@evil.example\x00\u2028")
    msg = parse(data)
    assert "Bcc" not in msg
    assert b"\r\nBcc:" not in data
    assert str(msg["To"]) == f'"Evil Bcc: x@evil.example" <{to_addr}>'


@given(st.text(max_size=40))
def test_any_name_gives_one_to_header_and_no_other(name: str) -> None:
    msg = parse(wire_message(args(to_name=name)))
    assert len(msg.get_all("To") or []) == 1
    assert set(msg.keys()) <= {
        "From", "To", "Reply-To", "Subject", "Date", "Message-ID", "MIME-Version", "List-Id",
        "List-Unsubscribe", "List-Unsubscribe-Post", "Content-Type",
    }  # fmt: skip
