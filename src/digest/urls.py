"""URLs from outside, checked once at the edge (``web_url``), and their canonical spelling, so
copies met in several feeds compare equal. A leaf utility any stage may import.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import quote, unquote, urlsplit

import idna

__all__ = [
    "METADATA_ADDRESSES",
    "METADATA_HOSTS",
    "InvalidURL",
    "canonical_url",
    "feed_url_problem",
    "is_tracking_param",
    "url_problem",
    "web_url",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Cloud instance-metadata endpoints: never fetched, not even for intranet feeds.
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack...
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
    )
)

#: Longer URLs are refused: no real article link comes near, and httpx stops at 64 KiB.
MAX_URL_CHARS = 8192


class InvalidURL(ValueError):
    """A URL an HTTP client cannot request; ``reason`` says why in a few words."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"invalid URL {url[:200]!r}: {reason}")
        self.url = url
        self.reason = reason


_DOTTED_NUMBERS = re.compile(r"^[0-9]+(\.[0-9]+){3}$")
_ASCII_HOST = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def web_url(url: object) -> str:
    """``url`` stripped, when it is an absolute http(s) URL an HTTP client can request.

    Raises ``InvalidURL`` otherwise: another scheme, no host, a host that is not a valid name or
    IP literal ("1.2.3.04", "0177.0.0.1", "[v1.x]"), a bad port, control characters. Spaces in
    the path or query come back as ``%20``, as a browser would send them.
    Every URL from outside (feed links, redirects, OPML, the command line) goes through here
    once, so a bad one is a recorded error on its unit rather than an exception deep in a fetch.
    """
    if not isinstance(url, str):
        raise InvalidURL(repr(url), "not text")
    text = url.strip()
    if not text:
        raise InvalidURL(text, "empty")
    if len(text) > MAX_URL_CHARS:
        raise InvalidURL(text, f"longer than {MAX_URL_CHARS} characters")
    if _CONTROL.search(text):
        raise InvalidURL(text, "contains control characters")
    try:
        parts = urlsplit(text)
        port = parts.port  # raises ValueError on a port that is not a number in range
    except ValueError as exc:
        raise InvalidURL(text, str(exc) or "unreadable") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidURL(text, f"not http(s) but {scheme!r}" if scheme else "not absolute")
    hostport = parts.netloc.rpartition("@")[2]
    if hostport.startswith("["):
        literal = hostport[1 : hostport.find("]")] if "]" in hostport else ""
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            raise InvalidURL(text, f"invalid IPv6 address [{literal}]") from None
    else:
        host = hostport.rpartition(":")[0] if ":" in hostport else hostport
        _check_host(text, host)
    if port == 0:
        raise InvalidURL(text, "port 0")
    # A space in a path or query (sloppy feeds) is what a browser sends as %20.
    return text.replace(" ", "%20")


def _check_host(text: str, host: str) -> None:
    if not host:
        raise InvalidURL(text, "no host")
    if _DOTTED_NUMBERS.match(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise InvalidURL(text, f"invalid IPv4 address {host}") from None
        return
    if host.isascii():
        if not _ASCII_HOST.match(host.lower()):
            raise InvalidURL(text, f"invalid host name {host!r}")
        return
    try:
        idna.encode(host.lower())
    except (idna.IDNAError, UnicodeError, ValueError):
        raise InvalidURL(text, f"invalid international host name {host!r}") from None


def feed_url_problem(url: str, *, allow_local: bool = True) -> str | None:
    """Why ``url`` cannot be a feed's address (None when it can): the one rule of OPML import
    and ``digest check``.

    An http(s) URL that ``web_url`` accepts and that names no cloud metadata endpoint; or, when
    ``allow_local``, a local file (``file:`` URL on this host, or a plain path). Any other
    scheme (``javascript:``, ``ftp:``, ``data:``...) is refused.
    """
    text = url.strip()
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        return f"unreadable URL: {exc}"
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        problem = url_problem(text)
        if problem is not None:
            return problem
        host = (parts.hostname or "").rstrip(".").lower()
        if host in METADATA_HOSTS:
            return f"{host} is a cloud metadata host"
        try:
            if ipaddress.ip_address(host.split("%", 1)[0]) in METADATA_ADDRESSES:
                return f"{host} is a cloud metadata address"
        except ValueError:
            pass
        return None
    # One letter is a Windows drive ("C:\\feeds\\a.xml"), not a scheme.
    local = scheme == "file" or not scheme or len(scheme) == 1
    if not local:
        return f"only http(s) feeds are read, not {scheme}:"
    if not allow_local:
        return "a local file (allowed only with --allow-local)"
    if scheme == "file" and parts.netloc not in ("", "localhost"):
        return f"a file on another host ({parts.netloc})"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        return "contains control characters"
    return None


def url_problem(url: object) -> str | None:
    """Why ``web_url`` refuses ``url`` (its reason), or None when it is a usable http(s) URL."""
    try:
        web_url(url)
    except InvalidURL as exc:
        return exc.reason
    return None


#: Exact names of query parameters that only identify a campaign or a click, never the page.
_TRACKING_NAMES = frozenset(
    {
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "twclid",
        "ttclid",
        "igshid",
        "li_fat_id",
        "mkt_tok",
        "_hsenc",
        "_hsmi",
        "__hstc",
        "__hssc",
        "__hsfp",
        "hsctatracking",
        "ref_src",
        "ref_url",
        "_ga",
        "_gl",
        "oly_anon_id",
        "oly_enc_id",
        "vero_id",
        "wickedid",
        "_openstat",
        # AT Internet (Le Monde, Libération, France Télévisions...): ?xtor=RSS-3208
        "xtor",
        "xts",
    }
)
#: Prefixes of tracking parameter families: Google Analytics, Mailchimp, AT Internet.
_TRACKING_PREFIXES = ("utm_", "mc_", "at_", "pk_", "mtm_")

_DEFAULT_PORTS = {"http": "80", "https": "443"}
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# A host, once IDNA-encoded and lower-cased, may only hold these (or be a bracketed IPv6 literal).
_HOST_OK = re.compile(r"^[a-z0-9_.-]+$")
_IPV6_OK = re.compile(r"^\[[0-9a-f:.]+(%25[0-9a-z._~-]+)?\]$")
_PATH_SAFE = "/:@!$&'()*+,;="
_QUERY_PART_SAFE = "/:@!$'()*+,;?"


def is_tracking_param(name: str) -> bool:
    """True when a query parameter name (raw or percent-encoded) is a known tracker."""
    key = unquote(name.replace("+", " ")).strip().lower()
    return key in _TRACKING_NAMES or key.startswith(_TRACKING_PREFIXES)


def strip_tracking(url: str) -> str:
    """The URL with its tracking parameters removed and everything else left as written.

    For links shown to readers: unlike ``canonical_url`` it keeps the scheme, the path's
    trailing slash and the order of the other parameters, so the link still works on sites
    that care about them. Never raises.
    """
    text = url.strip() if isinstance(url, str) else ""
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    if not parts.query:
        return text
    kept = [p for p in parts.query.split("&") if p and not is_tracking_param(p.partition("=")[0])]
    return parts._replace(query="&".join(kept)).geturl()


def canonical_url(url: str) -> str:
    """The canonical spelling of an http(s) URL; any other string comes back stripped.

    Lower-case scheme and host, http -> https, IDNA host, no default port, no fragment, no
    tracking parameters, sorted query, no trailing slash on non-root paths, dot segments
    removed and percent-encoding normalized. Idempotent; never raises.
    """
    text = url.strip() if isinstance(url, str) else ""
    try:
        return _canonical(text)
    except (ValueError, UnicodeError):
        # Whatever the standard library refuses to split or encode is not a URL we can improve.
        return text


def _canonical(text: str) -> str:
    if text.startswith("//"):
        text = "https:" + text
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        return text
    hostport = parts.netloc.rpartition("@")[2]
    userinfo = parts.netloc[: len(parts.netloc) - len(hostport)]  # keeps its trailing "@"
    host, port = _split_hostport(hostport)
    if host is None or port is None:
        return text
    if port in ("", _DEFAULT_PORTS[scheme], "443"):
        port = ""
    netloc = f"{_normalize_escapes(userinfo, _PATH_SAFE)}{host}{':' + port if port else ''}"
    path = _normalize_path(parts.path)
    query = _normalize_query(parts.query)
    return f"https://{netloc}{path}{'?' + query if query else ''}"


def _split_hostport(hostport: str) -> tuple[str | None, str | None]:
    """(host, port) normalized, or (None, None) when this is not a usable authority."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            return None, None
        host, rest = hostport[: end + 1].lower(), hostport[end + 1 :]
        if not _IPV6_OK.match(host):
            return None, None
        port = rest[1:] if rest.startswith(":") else ("" if not rest else None)
    else:
        host, sep, port = hostport.rpartition(":")
        if not sep:
            host, port = hostport, ""
        host = _idna(host.rstrip(".").lower())
        if not host or not _HOST_OK.match(host):
            return None, None
    if port is None or (port and not port.isdigit()):
        return None, None
    port = port.lstrip("0") or ("" if not port else "0")
    return host, port


def _idna(host: str) -> str:
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return ""


def _normalize_escapes(text: str, safe: str) -> str:
    """Decode escapes of unreserved characters, upper-case the others, escape the rest."""
    text = _LONE_PERCENT.sub("%25", text)

    def fix(m: re.Match[str]) -> str:
        char = chr(int(m.group(1), 16))
        return char if char in _UNRESERVED else "%" + m.group(1).upper()

    text = _ESCAPE.sub(fix, text)
    return quote(text, safe=safe + "%", errors="surrogatepass")


def _normalize_path(path: str) -> str:
    segments: list[str] = []
    for seg in path.split("/")[1:] if path.startswith("/") else path.split("/"):
        if seg == "..":
            if segments:
                segments.pop()
        elif seg != ".":
            segments.append(seg)
    clean = _normalize_escapes("/" + "/".join(segments), _PATH_SAFE)
    # Escapes of "." and ".." only become dot segments after decoding: drop those too.
    if "/./" in clean + "/" or "/../" in clean + "/":
        return _normalize_path(clean)
    clean = clean.rstrip("/")
    return clean or "/"


def _normalize_query(query: str) -> str:
    kept: list[str] = []
    for pair in query.split("&"):
        if not pair:
            continue
        name, eq, value = pair.partition("=")
        if is_tracking_param(name):
            continue
        kept.append(
            _normalize_escapes(name, _QUERY_PART_SAFE)
            + eq
            + _normalize_escapes(value, "=" + _QUERY_PART_SAFE)
        )
    return "&".join(sorted(kept))
