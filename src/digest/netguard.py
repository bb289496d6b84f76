"""The address guard's rule for every fetch of an outside URL (feeds, their redirects, article
pages): a private, loopback, link-local or cloud-metadata address is refused unless the feed
allows private addresses (metadata never). ``httpclient`` applies it to every connection.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from digest.urls import METADATA_ADDRESSES, METADATA_HOSTS, IPAddress

__all__ = ["METADATA_ADDRESSES", "METADATA_HOSTS", "Refused", "address_refusal", "literal_refusal"]


_CGNAT = ipaddress.ip_network("100.64.0.0/10")


def address_refusal(ip: IPAddress, *, allow_private: bool = False) -> str | None:
    """Why digest will not connect to ``ip`` (e.g. "loopback"), or None when it may."""
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv6 form that carries an IPv4 address is judged by that address.
        if ip.ipv4_mapped is not None:
            return address_refusal(ip.ipv4_mapped, allow_private=allow_private)
        embedded = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            inner = address_refusal(embedded, allow_private=allow_private)
            if inner is not None:
                return inner
    if ip in METADATA_ADDRESSES:
        return "cloud metadata"
    if ip.is_multicast:
        return "multicast"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        kind = "loopback"
    elif ip.is_reserved:  # before "private": 240.0.0.0/4 is both
        return "reserved"
    elif ip.is_link_local:
        kind = "link-local"
    elif isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        kind = "carrier-grade NAT"
    elif ip.is_private:
        kind = "private"
    elif not ip.is_global:
        kind = "non-public"
    else:
        return None
    return None if allow_private else kind


def literal_refusal(url: str, *, allow_private: bool = False) -> str | None:
    """``address_refusal`` for a URL whose host is written as an address (or ``localhost``),
    before any fetch (``digest check``); None for a name, which is only judged once resolved."""
    try:
        host = (urlsplit(url.strip()).hostname or "").rstrip(".").lower()
    except ValueError:
        return None
    if host == "localhost" or host.endswith(".localhost"):
        return None if allow_private else "loopback"
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    return address_refusal(ip, allow_private=allow_private)


class Refused(Exception):
    """Raised inside the connection layer; turned into BlockedAddressError with the URL."""
