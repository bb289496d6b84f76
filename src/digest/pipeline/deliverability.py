"""What mailbox providers check before they trust a sender, read from the settings: warnings for
``digest check`` (smtp mode); they never block a send."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache

from publicsuffixlist import PublicSuffixList

from digest.config import Settings
from digest.send import split_from
from digest.send.message import address_domain


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()  # the list shipped in the package: no network


def organizational_domain(domain: str) -> str:
    """``news.example.co.uk`` -> ``example.co.uk`` (DMARC relaxed alignment, RFC 7489 3.2)."""
    d = domain.strip().rstrip(".").lower()
    found = _psl().privatesuffix(d)
    return str(found) if found else d


def aligned(a: str, b: str) -> bool:
    """True when two domains share their organizational domain (relaxed alignment)."""
    return organizational_domain(a) == organizational_domain(b)


def provider_warnings(settings: Settings) -> list[str]:
    """One line per rule the big mailbox providers (Gmail, Yahoo, Microsoft) apply that this
    configuration breaks; empty when delivery is not by SMTP."""
    if settings.delivery.mode != "smtp":
        return []
    warnings: list[str] = []
    from_domain = address_domain(split_from(settings.delivery.from_)[1])
    if not settings.digest.base_url:
        warnings.append(
            "[digest] base_url is not set: no one-click unsubscribe (RFC 8058 "
            "List-Unsubscribe-Post), which Gmail and Yahoo require of bulk senders, and no "
            "link to the online issue"
        )
    dkim = settings.dkim
    if dkim is None:
        warnings.append(
            f"[dkim] is not configured: messages are unsigned, so DMARC for {from_domain} can "
            "only pass through SPF alignment (see docs/delivery.md)"
        )
    elif not aligned(dkim.domain, from_domain):
        warnings.append(
            f"[dkim] domain {dkim.domain!r} is not aligned with the From domain {from_domain!r} "
            f"(organizational domains {organizational_domain(dkim.domain)!r} and "
            f"{organizational_domain(from_domain)!r}): DMARC will not pass on this signature"
        )
    rp = settings.delivery.return_path
    if rp is not None:
        rp_domain = rp.rsplit("@", 1)[1]
        if not aligned(rp_domain, from_domain):
            warnings.append(
                f"[delivery] return_path domain {rp_domain!r} is not aligned with the From "
                f"domain {from_domain!r}: SPF passes for it but does not count for DMARC"
            )
    if not settings.brand.postal_address:
        warnings.append(
            "[brand] postal_address is not set: the footer does not say who sends the list "
            "from where (CAN-SPAM requires a postal address; providers expect one)"
        )
    return warnings


#: About how many entries fit in full within the HTML budget (~1.1 KB each over ~12 KB).
ENTRIES_THAT_FIT = 75


def size_warnings(settings: Settings) -> list[str]:
    """Without an online issue to link to, a large issue is cut to what fits: say so."""
    d = settings.digest
    most = d.max_items_per_topic * max(1, len(settings.topics))
    if d.base_url or most <= ENTRIES_THAT_FIT:
        return []
    return [
        f"without [digest] base_url, an issue of up to {most} items "
        f"(max_items_per_topic {d.max_items_per_topic} x {len(settings.topics)} topics) cannot "
        f"link to its online version: past about {ENTRIES_THAT_FIT} items the email keeps what "
        "fits under Gmail's ~102 KB clipping point and leaves the rest out"
    ]


_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def bounce_warnings(settings: Settings, environ: Mapping[str, str] | None = None) -> list[str]:
    """The ``[bounces]`` mailbox as a poll would find it: password, clear-text login."""
    b = settings.bounces
    if not b.host:
        return []
    env = os.environ if environ is None else environ
    found: list[str] = []
    if b.security == "none" and b.host.lower() not in _LOOPBACK:
        found.append(
            f'bounces.security = "none": the IMAP password goes to {b.host} in clear text; '
            'use "tls" or "starttls"'
        )
    if not b.password_env or not env.get(b.password_env):
        found.append(
            f"bounces.password_env: ${b.password_env} is not set here: the bounce mailbox "
            "cannot be read until it is"
        )
    return found
