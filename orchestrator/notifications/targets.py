"""Where a rule sends: its target checked when it is saved, and a webhook's host checked again at send.

A webhook must not turn the server or its workers into a way to reach internal
addresses (a database, a cloud's metadata service at 169.254.169.254). So a
webhook's host is refused when it is, or resolves to, a loopback, private,
link-local, shared, reserved, multicast or unspecified address, unless it is on
RUNWAY_NOTIFICATION_ALLOWED_HOSTS (host names, `*.suffix`, IP addresses or networks).
With RUNWAY_NOTIFICATION_ALLOW_PUBLIC_HOSTS=false only hosts on that list are reached.
At send time the name is resolved again and the request goes to an address just
checked (no second lookup a DNS change could answer differently); redirects are
not followed.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from orchestrator.exceptions import InvalidInput

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
CALLABLE_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
METADATA_NAMES = frozenset({"metadata", "metadata.google.internal", "metadata.azure.internal", "instance-data"})
MAX_EMAILS = 50


class HostRefused(InvalidInput):
    """Raised when a webhook's host is, or resolves to, an address the allow-list does not open."""


@dataclass(frozen=True)
class ResolvedTarget:
    """A webhook URL whose host was checked: send to `address`, naming `hostname` (Host header, TLS SNI)."""

    url: str
    hostname: str
    address: Address


def emails(target: str) -> list[str]:
    """The comma-separated addresses of an email rule, each checked."""
    found = [part.strip() for part in target.split(",") if part.strip()]
    if not found:
        raise InvalidInput("an email rule needs at least one address in its target, e.g. oncall@example.com")
    if len(found) > MAX_EMAILS:
        raise InvalidInput(f"an email rule may send to at most {MAX_EMAILS} addresses, not {len(found)}")
    for address in found:
        try:
            validate_email(address)
        except ValidationError:
            raise InvalidInput(f"{address!r} is not an email address (targets are comma-separated addresses)") from None
    return found


def callable_path(target: str) -> str:
    """A "package.module:function" path (the function is imported on the worker when it sends),
    in a module RUNWAY_NOTIFICATION_CALLABLES allows."""
    target = target.strip()
    if not CALLABLE_PATH.match(target):
        raise InvalidInput(f"{target!r} is not an import path; write it as package.module:function "
                           "(a module the workers can import, and a function of it taking the message dict)")  # fmt: skip
    if not callable_allowed(target):
        allowed = ", ".join(settings.RUNWAY_NOTIFICATION_CALLABLES) or "none: it is empty"
        module = target.partition(":")[0]
        raise InvalidInput(f"{target} is not in a module RUNWAY_NOTIFICATION_CALLABLES allows ({allowed}); "
                           f"list its module there (e.g. RUNWAY_NOTIFICATION_CALLABLES={module}) on the server "
                           "and on the workers")  # fmt: skip
    return target


def callable_allowed(target: str) -> bool:
    """Whether an entry of RUNWAY_NOTIFICATION_CALLABLES names the function, its module or a package of it."""
    module = target.partition(":")[0]
    for entry in settings.RUNWAY_NOTIFICATION_CALLABLES:
        if ":" in entry:
            if entry == target:
                return True
        elif module == entry or module.startswith(f"{entry}."):
            return True
    return False


def webhook_url(url: str) -> str:
    """The URL, if it is http(s) with a host the allow-list lets webhooks reach.

    A name that does not resolve now is accepted (it is resolved and checked again at each send)."""
    hostname = _split(url)[1]
    if not _listed(hostname):
        try:
            addresses = _addresses(hostname)
        except OSError:
            if not settings.RUNWAY_NOTIFICATION_ALLOW_PUBLIC_HOSTS:
                _check_address(hostname, None)
            addresses = []
        for address in addresses:
            _check_address(hostname, address)
    return url.strip()


def webhook_resolve(url: str) -> ResolvedTarget:
    """Resolve the URL's host and check every address it has; the first one is the one to send to.

    HostRefused when one is refused; OSError when the name does not resolve (it may, later)."""
    hostname = _split(url)[1]
    listed = _listed(hostname)
    addresses = _addresses(hostname, listed=listed)
    if not listed:
        for address in addresses:
            _check_address(hostname, address)
    return ResolvedTarget(url=url.strip(), hostname=hostname, address=addresses[0])


def _addresses(hostname: str, *, listed: bool = False) -> list[Address]:
    """The host's addresses: itself if it is one, else what it resolves to (OSError if nothing)."""
    literal = _literal(hostname)
    if literal is not None:
        return [literal]
    if hostname in METADATA_NAMES and not listed:
        raise HostRefused(f"webhook host {hostname!r} is a cloud metadata service; webhooks never reach it")
    return _resolve(hostname)


def _split(url: str) -> tuple[str, str]:
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as error:
        raise InvalidInput(f"webhook URL {url!r} is malformed: {error}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(f"webhook URL {url!r} must start with https:// or http://")
    if not parts.hostname:
        raise InvalidInput(f"webhook URL {url!r} has no host; write it as https://host/path")
    if any(ch.isspace() for ch in url):
        raise InvalidInput(f"webhook URL {url!r} contains white space")
    return parts.scheme, parts.hostname.rstrip(".").lower()


def _literal(hostname: str) -> Address | None:
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        return None
    return _unmapped(address)


def _unmapped(address: Address) -> Address:
    """::ffff:127.0.0.1 is 127.0.0.1."""
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped if mapped is not None else address


def _resolve(hostname: str) -> list[Address]:
    infos = socket.getaddrinfo(hostname, None, proto=socket.IPPROTO_TCP)
    addresses: list[Address] = []
    for info in infos:
        address = _unmapped(ipaddress.ip_address(info[4][0].split("%", 1)[0]))
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise OSError(f"{hostname} has no address")
    return addresses


def _listed(hostname: str, address: Address | None = None) -> bool:
    """Is the host name, or `address`, on RUNWAY_NOTIFICATION_ALLOWED_HOSTS?"""
    for raw in settings.RUNWAY_NOTIFICATION_ALLOWED_HOSTS:
        entry = raw.strip().lower().rstrip(".").strip("[]")
        if not entry:
            continue
        if entry.startswith("*."):
            if hostname.endswith(entry[1:]):
                return True
            continue
        if entry == hostname:
            return True
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


def _check_address(hostname: str, address: Address | None) -> None:
    """Refuse `address` (of `hostname`) unless it is public and public hosts are allowed, or listed."""
    if address is not None and _listed(hostname, address):
        return
    how = "add the host to RUNWAY_NOTIFICATION_ALLOWED_HOSTS to allow it"
    if not settings.RUNWAY_NOTIFICATION_ALLOW_PUBLIC_HOSTS:
        raise HostRefused(f"webhook host {hostname!r} is not on RUNWAY_NOTIFICATION_ALLOWED_HOSTS, and only those "
                          "hosts are allowed (RUNWAY_NOTIFICATION_ALLOW_PUBLIC_HOSTS=false)")  # fmt: skip
    kind = _internal_kind(address)
    if kind:
        where = f"is {address}" if str(address) == hostname else f"resolves to {address}"
        article = "an" if kind[0] in "aeiou" else "a"
        raise HostRefused(f"webhook host {hostname!r} {where}, {article} {kind} address: webhooks may not reach "
                          f"internal addresses; {how}")  # fmt: skip


def _internal_kind(address: Address | None) -> str:
    """Why the address is not public ('' if it is)."""
    if address is None:
        return ""
    for kind, test in (("loopback", "is_loopback"), ("link-local (cloud metadata)", "is_link_local"),
                       ("unspecified", "is_unspecified"), ("multicast", "is_multicast"),
                       ("private", "is_private"), ("reserved", "is_reserved")):  # fmt: skip
        if getattr(address, test):
            return kind
    return "" if address.is_global else "non-public (shared or special-purpose)"
