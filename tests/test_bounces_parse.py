"""Bounce, complaint and unsubscribe reports read from the samples of the major MTAs and
providers (tests/data/bounces/), classified hard, soft or policy."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.bounces import Kind, Severity, classify, parse_report
from digest.bounces.parse import status_from_text

SAMPLES = Path(__file__).parent / "data" / "bounces"
ORIGINAL = "<issue-1.0123456789abcdef0123456789abcdef@example.org>"
OURS = ("digest@example.org",)


def read(name: str):  # type: ignore[no-untyped-def]
    return parse_report((SAMPLES / name).read_bytes(), from_addresses=OURS)


@pytest.mark.parametrize(
    ("name", "recipient", "status", "severity", "note"),
    [
        ("postfix-5.1.1.eml", "ann@example.com", "5.1.1", Severity.HARD, "DSN"),
        ("postfix-4.2.2-mailbox-full.eml", "ann@example.com", "4.2.2", Severity.SOFT, "DSN"),
        ("sendmail-5.1.1.eml", "bob@example.net", "5.1.1", Severity.HARD, "DSN"),
        ("exchange-o365-5.1.10.eml", "dave@contoso.com", "5.1.10", Severity.HARD, "DSN"),
        ("gmail-5.1.1.eml", "erin@gmail.com", "5.1.1", Severity.HARD, "DSN"),
        ("gmail-5.7.1-policy.eml", "frank@gmail.com", "5.7.26", Severity.POLICY, "DSN"),
        ("exim-plaintext.eml", "carol@example.net", "5.1.1", Severity.HARD, "non-standard"),
        ("yahoo-plaintext.eml", "grace@yahoo.com", "5.1.1", Severity.HARD, "non-standard"),
        ("qmail.eml", "heidi@example.net", "5.1.1", Severity.HARD, "non-standard"),
    ],
)
def test_each_mta_bounce_names_the_failed_recipient_and_its_status(
    name: str, recipient: str, status: str, severity: Severity, note: str
) -> None:
    report = read(name)
    assert report.kind is Kind.BOUNCE
    assert report.note == note
    assert [(f.recipient, f.status, f.severity) for f in report.failures] == [
        (recipient, status, severity)
    ]


@pytest.mark.parametrize(
    "name",
    [
        "postfix-5.1.1.eml",
        "sendmail-5.1.1.eml",
        "exchange-o365-5.1.10.eml",
        "gmail-5.1.1.eml",
        "exim-plaintext.eml",
        "yahoo-plaintext.eml",
        "qmail.eml",
        "arf-complaint.eml",
    ],
)
def test_the_original_message_id_is_found_attached_or_quoted(name: str) -> None:
    assert read(name).original_message_id == ORIGINAL


def test_a_verp_return_path_in_the_attached_original_is_offered_for_matching() -> None:
    assert "bounces+1s7-0123456789abcdef@example.org" in read("gmail-5.1.1.eml").envelope_addresses


def test_an_arf_report_is_a_complaint_naming_who_complained() -> None:
    report = read("arf-complaint.eml")
    assert report.kind is Kind.COMPLAINT
    assert report.complainant == "ann@example.com"
    assert report.feedback_type == "abuse"


def test_a_delay_warning_and_an_auto_reply_are_not_bounces() -> None:
    assert read("delayed-4.4.7.eml").kind is Kind.OTHER
    assert read("autoreply.eml").kind is Kind.OTHER


def test_a_mailed_unsubscribe_request_carries_its_token() -> None:
    data = b"From: ann@example.com\r\nTo: d@example.org\r\nSubject: unsubscribe u.abc..sig\r\n\r\n"
    report = parse_report(data)
    assert report.kind is Kind.UNSUBSCRIBE
    assert report.unsubscribe_token == "u.abc..sig"


@pytest.mark.parametrize(
    "sender",
    [b"digest@example.org", b"Digest <digest@example.org>", b'"Veille" <DIGEST@example.org>'],
)
def test_a_message_from_our_own_address_is_never_a_bounce(sender: bytes) -> None:
    data = (
        (SAMPLES / "qmail.eml")
        .read_bytes()
        .replace(b"From: MAILER-DAEMON@mail.example.net", b"From: " + sender)
    )
    assert parse_report(data, from_addresses=OURS).kind is Kind.OTHER


@pytest.mark.parametrize(
    ("status", "severity"),
    [
        ("5.1.1", Severity.HARD),
        ("5.1.2", Severity.HARD),
        ("5.1.10", Severity.HARD),
        ("5.2.1", Severity.HARD),
        ("5.2.2", Severity.SOFT),
        ("4.2.2", Severity.SOFT),
        ("4.4.1", Severity.SOFT),
        ("5.7.1", Severity.POLICY),
        ("5.7.26", Severity.POLICY),
        ("5.0.0", Severity.SOFT),
        (None, Severity.SOFT),
    ],
)
def test_status_codes_are_classified_as_rfc_3463_reads_them(
    status: str | None, severity: Severity
) -> None:
    assert classify(status) is severity


def test_words_stand_in_for_a_missing_status_code() -> None:
    assert status_from_text("550 Sorry, no mailbox here by that name.") == "5.1.1"
    assert status_from_text("552 Mailbox full", permanent=True) == "5.2.2"
    assert status_from_text("554 rejected: listed on a block list") == "5.7.1"
    assert status_from_text("421 try later") == "4.0.0"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_parse_without_raising(data: bytes) -> None:
    assert parse_report(data).kind in set(Kind)


@settings(max_examples=100, deadline=None)
@given(
    st.text(max_size=300), st.sampled_from(["postfix-5.1.1.eml", "qmail.eml", "arf-complaint.eml"])
)
def test_garbage_inside_a_real_report_never_raises(junk: str, name: str) -> None:
    data = (SAMPLES / name).read_bytes()
    cut = len(data) // 2
    mangled = data[:cut] + junk.encode("utf-8", "replace") + data[cut:]
    assert parse_report(mangled).kind in set(Kind)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_a_return_path_token_is_ours_or_refused(token: str) -> None:
    from digest.errors import InvalidToken
    from digest.tokens import read_verp_token, verp_token

    secret = b"verp-test-secret-0123456789abcdef"
    try:
        issue, subscriber = read_verp_token(secret, token)
    except InvalidToken:
        return
    assert verp_token(secret, issue, subscriber) == token.strip().lower()
