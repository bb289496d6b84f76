"""`digest check` warns about what the big mailbox providers hold against a sender (smtp mode):
no one-click unsubscribe, DKIM off or not aligned, no postal address (credentials in clear are
config/checks.py's warning)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli
from delivery_kit import settings
from digest.pipeline.deliverability import aligned, organizational_domain, provider_warnings

GOOD = {
    "digest": {"base_url": "https://news.example.org"},
    "delivery": {"mode": "smtp", "from": "Veille <veille@news.example.org>"},
    "dkim": {"selector": "s1", "domain": "example.org", "key_env": "DKIM_KEY"},
    "smtp": {"security": "starttls", "username": "digest"},
    "brand": {"postal_address": "1 rue de la Paix, 75002 Paris, France"},
}


def cfg(**changes: dict[str, object] | None):  # type: ignore[no-untyped-def]
    data = {k: dict(v) for k, v in GOOD.items()}
    for section, values in changes.items():
        if values is None:
            data.pop(section)
        else:
            data[section] = {**data.get(section, {}), **values}
    return settings(**data)


@pytest.mark.parametrize(
    ("domain", "org"),
    [
        ("news.example.org", "example.org"),
        ("example.org", "example.org"),
        ("mail.example.co.uk", "example.co.uk"),
        ("a.b.example.com.au", "example.com.au"),
    ],
)
def test_organizational_domains_follow_the_public_suffix_list(domain: str, org: str) -> None:
    assert organizational_domain(domain) == org


def test_relaxed_alignment_accepts_subdomains_of_one_organization_only() -> None:
    assert aligned("mail.example.org", "news.example.org")
    assert not aligned("example.co.uk", "other.co.uk")
    assert not aligned("unrelated.example", "example.org")


def test_a_configuration_following_the_rules_gets_no_warning() -> None:
    assert provider_warnings(cfg()) == []


def test_outbox_mode_gets_no_provider_warning() -> None:
    assert provider_warnings(cfg(delivery={"mode": "outbox"}, dkim=None, digest={})) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"digest": {"base_url": None}}, "no one-click unsubscribe"),
        ({"dkim": None}, "[dkim] is not configured"),
        ({"dkim": {"domain": "unrelated.example"}}, "is not aligned with the From domain"),
        ({"brand": {"postal_address": None}}, "postal_address is not set"),
        (
            {"delivery": {"return_path": "bounces+{token}@esp.example.net"}},
            "return_path domain 'esp.example.net' is not aligned",
        ),
    ],
)
def test_each_broken_rule_is_one_warning(changes: dict[str, object], expected: str) -> None:
    warnings = provider_warnings(cfg(**changes))  # type: ignore[arg-type]
    assert len(warnings) == 1
    assert expected in warnings[0]


def test_check_prints_the_warnings_and_still_exits_0(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    monkeypatch.setenv("K", pem.decode())
    monkeypatch.setenv("DIGEST_SECRET", "x" * 40)
    config = workdir / "digest.toml"
    config.write_text(
        '[delivery]\nmode = "smtp"\nfrom = "Veille <veille@example.org>"\n'
        '[dkim]\nselector = "s1"\ndomain = "unrelated.example"\nkey_env = "K"\n'
    )
    result = run_cli(capsys, "--config", str(config), "check")
    assert result.code == 0, result.err
    assert "warning: [digest] base_url is not set" in result.err
    assert "'unrelated.example' is not aligned with the From domain 'example.org'" in result.err
    assert "warning: [brand] postal_address is not set" in result.err


def test_the_bounce_mailbox_warns_about_a_missing_password_and_clear_text() -> None:
    from digest.pipeline.deliverability import bounce_warnings

    assert bounce_warnings(cfg()) == []
    remote = cfg(bounces={"host": "imap.example.org", "username": "b", "security": "none"})
    found = bounce_warnings(remote, environ={})
    assert any("in clear text" in w for w in found)
    assert any("$DIGEST_BOUNCES_PASSWORD is not set" in w for w in found)
    local = cfg(bounces={"host": "127.0.0.1", "username": "b", "security": "none"})
    assert bounce_warnings(local, environ={"DIGEST_BOUNCES_PASSWORD": "x"}) == []
