"""Fetching the candidates of the DNS SRV and IPFS bootstrap methods (BOOT-4.1 methods 5 and 6).

* **DNS SRV** (RFC 2782, resolved with dnspython against a given name
  server): each SRV target is ``<public key in base32>.<any domain>``; the
  target's A record gives the host, the SRV record the port. Records are
  ordered by priority, and by RFC 2782's weighted random choice within a
  priority (the random source is injected). DNS is not authenticated, so a
  target counts only if its key is one the client already trusts (from a
  verified manifest or its cache): DNS may say where a known node is now,
  never who is a node (BOOT-3.6). Targets that are not of that form, or whose
  A record does not resolve, are dropped; if none is left the source fails
  with ``dns_bogus_answer``. The queries go to a name server over UDP, or,
  as an option, over DNS-over-HTTPS (RFC 8484, dnspython's DoH client: a
  POST of the wire-format query to the resolver's URL), which a censor
  cannot single out by port. DoH failures are labelled too: an HTTP status
  other than 2xx is ``http_error``, a body that is not a DNS message
  ``dns_bogus_answer``, no connection ``connection_refused``.
* **IPFS** (a trustless gateway, ``GET /ipfs/<cid>?format=raw``): the CID
  must be a CIDv1 of codec ``raw`` with a SHA-256 multihash, and the bytes
  the gateway returns must hash to it (else ``wrong_cid``) before the
  manifest inside is verified against the trusted root (BOOT-3; a refusal is
  ``manifest_rejected``). At most `MAX_MANIFEST_SIZE` + 1 bytes are read.

Each fetch returns race candidates or raises `SourceError` with its label.
"""

import base64
import hashlib
import random
from collections.abc import Awaitable, Callable, Collection, Sequence
from functools import partial
from typing import Any, Final

import anyio
import cid
import dns.asyncquery
import dns.asyncresolver
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
import dns.resolver
import h11
import httpx2
import multihash

from railgun_ref.bootstrap import manifest as m
from railgun_ref.bootstrap.race import Candidate, Failure, Method
from railgun_ref.core.ids import Address
from railgun_ref.identity.keys import public_key_problem

#: Base32 (RFC 4648, lower case, no padding) of a 32-byte key: 52 characters.
KEY_LABEL_LENGTH: Final = 52


class SourceError(Exception):
    """A source could not give candidates; `failure` is the label the race reports."""

    def __init__(self, failure: Failure, message: str) -> None:
        super().__init__(f"{failure.value}: {message}")
        self.failure = failure


# --- DNS SRV ----------------------------------------------------------------------------


def key_label(public_key: bytes) -> str:
    """The first label of an SRV target naming `public_key`."""
    return base64.b32encode(public_key).decode("ascii").rstrip("=").lower()


def key_from_target(target: str) -> bytes | None:
    label = target.split(".", 1)[0]
    if len(label) != KEY_LABEL_LENGTH:
        return None
    try:
        key = base64.b32decode(label.upper() + "====")
    except ValueError:
        return None
    return key if public_key_problem(key) is None else None


def rfc2782_order(
    records: Sequence[tuple[int, int, int, str]], rng: random.Random
) -> list[tuple[int, int, int, str]]:
    """RFC 2782: ascending priority; within one, weighted random selection (running sums)."""
    ordered: list[tuple[int, int, int, str]] = []
    for priority in sorted({r[0] for r in records}):
        pool = sorted((r for r in records if r[0] == priority), key=lambda r: r[1])
        while pool:
            total = sum(r[1] for r in pool)
            pick = rng.randint(0, total)
            running = 0
            for index, record in enumerate(pool):
                running += record[1]
                if running >= pick:
                    ordered.append(pool.pop(index))
                    break
    return ordered


def _resolver(nameserver: Address, timeout: float) -> dns.asyncresolver.Resolver:
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [nameserver[0]]
    resolver.port = nameserver[1]
    resolver.lifetime = timeout
    return resolver


async def _query(resolver: dns.asyncresolver.Resolver, name: str, kind: str) -> dns.resolver.Answer:
    try:
        return await resolver.resolve(name, kind)
    except dns.resolver.NXDOMAIN:
        raise SourceError(Failure.DNS_NXDOMAIN, name) from None
    except dns.exception.Timeout:
        raise SourceError(Failure.DNS_TIMEOUT, name) from None
    except dns.resolver.NoAnswer:
        raise SourceError(Failure.DNS_BOGUS_ANSWER, f"no {kind} record for {name}") from None
    except dns.exception.DNSException as exc:  # NoNameservers: SERVFAIL, REFUSED
        raise SourceError(Failure.DNS_SERVFAIL, f"{name}: {exc}") from None


async def _doh_query(url: str, name: str, kind: str, *, timeout: float) -> list[Any]:
    """The `kind` records of `name` from the DoH resolver at `url` (RFC 8484, POST)."""
    query = dns.message.make_query(name, kind)
    try:
        response = await dns.asyncquery.https(query, url, timeout=timeout)
    except dns.exception.Timeout:
        raise SourceError(Failure.DNS_TIMEOUT, name) from None
    except dns.exception.DNSException as exc:  # the body is not a DNS message
        raise SourceError(Failure.DNS_BOGUS_ANSWER, f"DoH: {exc}") from None
    except httpx2.ConnectError:
        raise SourceError(Failure.CONNECTION_REFUSED, f"DoH: cannot reach {url}") from None
    except (httpx2.HTTPError, ValueError) as exc:  # dnspython: ValueError for a non-2xx status
        raise SourceError(Failure.HTTP_ERROR, f"DoH: {str(exc).splitlines()[0]}") from None
    rcode = response.rcode()
    if rcode == dns.rcode.NXDOMAIN:
        raise SourceError(Failure.DNS_NXDOMAIN, name)
    if rcode != dns.rcode.NOERROR:
        raise SourceError(Failure.DNS_SERVFAIL, f"{name}: {dns.rcode.to_text(rcode)}")
    wanted = dns.rdatatype.from_text(kind)
    records = [r for rrset in response.answer if rrset.rdtype == wanted for r in rrset]
    if not records:
        raise SourceError(Failure.DNS_BOGUS_ANSWER, f"no {kind} record for {name}")
    return records


async def _udp_query(
    resolver: dns.asyncresolver.Resolver, name: str, kind: str, *, timeout: float
) -> list[Any]:
    return list(await _query(resolver, name, kind))


def _lookup(
    nameserver: Address | None, doh_url: str | None, timeout: float
) -> Callable[[str, str], Awaitable[list[Any]]]:
    if doh_url is not None:
        return partial(_doh_query, doh_url, timeout=timeout)
    if nameserver is None:
        raise SourceError(Failure.UNREACHABLE, "no name server and no DoH URL")
    return partial(_udp_query, _resolver(nameserver, timeout), timeout=timeout)


async def fetch_dns_srv(
    name: str,
    *,
    nameserver: Address | None = None,
    doh_url: str | None = None,
    trusted_keys: Collection[bytes],
    rng: random.Random,
    timeout: float = 3.0,
) -> list[Candidate]:
    """The SRV records of `name` as candidates whose keys the client already trusts.

    Queries go to `nameserver` over UDP, or over DoH to `doh_url` when it is given.
    """
    lookup = _lookup(nameserver, doh_url, timeout)
    answer = await lookup(name, "SRV")
    records = [
        (r.priority, r.weight, r.port, r.target.to_text())
        for r in answer
        if r.rdtype == dns.rdatatype.SRV
    ]
    candidates = []
    for _, _, port, target in rfc2782_order(records, rng):
        key = key_from_target(target)
        if key is None or key not in trusted_keys or port == 0:
            continue  # garbage, or a node nobody vouched for
        try:
            hosts = await lookup(target, "A")
        except SourceError:
            continue
        for host in hosts:
            address = f"{host.to_text()}:{port}"
            candidates.append(Candidate(method=Method.DNS_SRV, public_key=key, address=address))
    if not candidates:
        raise SourceError(Failure.DNS_BOGUS_ANSWER, f"no usable SRV target under {name}")
    return candidates


# --- IPFS ---------------------------------------------------------------------------------


def raw_cid(data: bytes) -> str:
    """The CIDv1 (codec raw, SHA-256, base32) of `data`: how a manifest is published."""
    digest = multihash.encode(hashlib.sha256(data).digest(), "sha2-256")
    text = cid.make_cid(1, "raw", digest).encode("base32")
    return text.decode("ascii") if isinstance(text, bytes) else str(text)


def expected_digest(cid_text: str) -> bytes:
    """The SHA-256 digest a CIDv1 raw/sha2-256 names (`SourceError` for any other CID)."""
    try:
        parsed = cid.from_string(cid_text)
        decoded = multihash.decode(parsed.multihash)
    except Exception as exc:  # py-cid raises several types on a bad CID
        raise SourceError(Failure.WRONG_CID, f"not a CID: {exc}") from None
    if parsed.version != 1 or parsed.codec != "raw" or decoded.name != "sha2-256":
        raise SourceError(Failure.WRONG_CID, "a manifest CID is CIDv1, raw, sha2-256")
    digest: bytes = decoded.digest
    return digest


async def _http_get(gateway: Address, target: str, limit: int) -> bytes:
    """One HTTP/1.1 GET over a fresh connection; the body, at most `limit` + 1 bytes."""
    connection = h11.Connection(h11.CLIENT)
    request = h11.Request(
        method="GET",
        target=target,
        headers=[("Host", f"{gateway[0]}:{gateway[1]}"), ("Accept", "application/vnd.ipld.raw")],
    )
    async with await anyio.connect_tcp(gateway[0], gateway[1]) as stream:
        await stream.send(connection.send(request) + connection.send(h11.EndOfMessage()))
        body = bytearray()
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await stream.receive())
            elif isinstance(event, h11.Response) and event.status_code != 200:
                raise SourceError(Failure.HTTP_ERROR, f"gateway answered {event.status_code}")
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > limit:
                    break
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
    return bytes(body)


async def fetch_ipfs_manifest(
    cid_text: str,
    *,
    gateway: Address,
    root: m.Root,
    last_version: int,
    now: float,
) -> tuple[m.Manifest, list[Candidate]]:
    """The manifest `cid_text` names, checked by CID then by signature, and its UDP candidates."""
    digest = expected_digest(cid_text)
    try:
        data = await _http_get(gateway, f"/ipfs/{cid_text}?format=raw", m.MAX_MANIFEST_SIZE)
    except OSError as exc:
        raise SourceError(Failure.CONNECTION_REFUSED, f"gateway: {exc}") from None
    except (h11.ProtocolError, anyio.EndOfStream, anyio.BrokenResourceError) as exc:
        raise SourceError(Failure.HTTP_ERROR, f"gateway: not an HTTP answer ({exc!r})") from None
    if len(data) > m.MAX_MANIFEST_SIZE:
        raise SourceError(Failure.MANIFEST_REJECTED, "oversize: over the manifest size cap")
    if hashlib.sha256(data).digest() != digest:
        raise SourceError(Failure.WRONG_CID, "the gateway's bytes do not hash to the CID")
    try:
        manifest = m.verify_manifest(root, data, now=now, last_version=last_version)
    except m.ManifestError as exc:
        raise SourceError(Failure.MANIFEST_REJECTED, exc.message) from None
    return manifest, manifest_candidates(manifest, Method.IPFS)


def manifest_candidates(manifest: m.Manifest, method: Method) -> list[Candidate]:
    """The UDP addresses a manifest lists, as candidates of `method`."""
    return [
        Candidate(method=method, public_key=node.public_key, address=address)
        for node in manifest.nodes
        for kind, address in node.addresses
        if kind is m.AddressKind.UDP
    ]
