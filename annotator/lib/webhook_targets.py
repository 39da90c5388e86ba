"""Where a webhook may go: public addresses only, unless the site allow-lists a receiver.

A rule's URL is checked when it is saved (the API, the admin) and again at each delivery,
on the addresses its host resolves to then: DNS can change between the two, so a delivery
resolves once, checks every address, and connects to the checked one (the Host header, TLS
SNI and the certificate check keep the name), so a rebinding in between reaches nothing new.
Loopback, private, link-local, multicast, reserved, unspecified and other non-global
addresses are refused, however spelled (2130706433, 0177.0.0.1, ::ffff:127.0.0.1 resolve to
127.0.0.1 first). ANNOTATOR_WEBHOOK_ALLOWED_HOSTS lists host names and networks (CIDR) that
may be reached all the same, for sites whose receiver is internal.
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

DEFAULT_PORTS = {"http": 80, "https": 443}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
REFUSED_KINDS = (("unspecified", "an unspecified address"), ("loopback", "a loopback address"),
                 ("link_local", "a link-local address"), ("multicast", "a multicast address"),
                 ("reserved", "a reserved address"), ("private", "a private address"))


class TargetRefused(ValueError):
    """The URL may not be called; the message says why."""


class TargetUnresolvable(TargetRefused):
    """The host does not resolve (now): a later attempt may succeed."""


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str  # the name as in the URL, lower case, no brackets
    port: int
    address: IPAddress  # the checked address the delivery connects to

    @property
    def pinned_url(self) -> str:
        """The URL with the checked address in place of the name (credentials kept)."""
        parts = urlsplit(self.url)
        credentials = parts.netloc.rpartition("@")[0]
        literal = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        netloc = f"{credentials}@" if credentials else ""
        return urlunsplit((self.scheme, f"{netloc}{literal}:{self.port}", parts.path or "/",
                           parts.query, ""))

    @property
    def host_header(self) -> str:
        return urlsplit(self.url).netloc.rpartition("@")[2]


def _allowed() -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    names, networks = set(), []
    for entry in settings.WEBHOOK_ALLOWED_HOSTS:
        entry = entry.strip().lower().strip("[]")
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry.rstrip("."))
    return names, networks


def address_problem(address: IPAddress) -> str:
    """Why a webhook may not go to this address ("" if it may)."""
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    for kind, phrase in REFUSED_KINDS:
        if getattr(address, f"is_{kind}"):
            return phrase
    if not address.is_global:
        return "not a public address"
    return ""


def _parse(url: str) -> tuple[str, str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise TargetRefused("an http or https URL")
    if not parts.hostname:
        raise TargetRefused("the URL names no host")
    return scheme, parts.hostname.rstrip("."), port or DEFAULT_PORTS[scheme]


def _addresses(host: str, port: int) -> list[IPAddress]:
    """Every address the host resolves to (a numeric host, however spelled, to itself)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetUnresolvable(f"cannot resolve {host}") from exc
    # an IPv6 address may carry a zone (fe80::1%eth0): the address is the part before it
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in found))


def _check(host: str, addresses: list[IPAddress]) -> None:
    names, networks = _allowed()
    if host in names:
        return
    for address in addresses:
        if any(address in network for network in networks):
            continue
        if problem := address_problem(address):
            # a name's address is not shown: the message must not map the internal network
            what = f"{host} is" if host == str(address) else f"{host} resolves to"
            raise TargetRefused(
                f"{what} {problem}: webhooks go to public addresses only (a site with an "
                "internal receiver lists it in ANNOTATOR_WEBHOOK_ALLOWED_HOSTS)")


def resolve(url: str) -> Target:
    """The target of a delivery: resolved now, every address checked; raises TargetRefused."""
    scheme, host, port = _parse(url)
    addresses = _addresses(host, port)
    _check(host, addresses)
    return Target(url=url, scheme=scheme, host=host, port=port, address=addresses[0])


def url_problem(url: str) -> str:
    """Why a rule may not keep this URL ("" if it may), for the API and the admin. A host that
    does not resolve yet is let through: each delivery resolves and checks it again."""
    try:
        resolve(url)
    except TargetUnresolvable:
        return ""
    except TargetRefused as exc:
        return str(exc)
    return ""


def post(target: Target, body: bytes, timeout: float, *, headers: dict):
    """POST to the checked address, never following a redirect; the response is streamed,
    so its body is not read."""
    import requests
    from requests.adapters import HTTPAdapter

    class PinnedAdapter(HTTPAdapter):
        def build_connection_pool_key_attributes(self, request, verify, cert=None):
            host_params, pool_kwargs = super().build_connection_pool_key_attributes(
                request, verify, cert)
            if host_params["scheme"] == "https":  # SNI and the certificate: the name
                pool_kwargs["server_hostname"] = target.host
                pool_kwargs["assert_hostname"] = target.host
            return host_params, pool_kwargs

    with requests.Session() as session:
        session.trust_env = False  # no proxy from the environment: it would resolve the name
        session.mount("http://", PinnedAdapter())
        session.mount("https://", PinnedAdapter())
        return session.post(target.pinned_url, data=body, timeout=timeout, stream=True,
                            allow_redirects=False, verify=settings.WEBHOOK_CA_BUNDLE or True,
                            headers={**headers, "Host": target.host_header})
