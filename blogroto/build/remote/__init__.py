"""Fetch remote images for the build, safely.

A post may reference `https://...` images; the build downloads them to stylize them. The URL comes
from content that may not be fully trusted (guest posts, imported archives), and the build may run
in CI next to cloud metadata endpoints, so a fetch:

* speaks only http/https, with no proxies or .netrc from the environment;
* resolves the host itself and refuses it if ANY address is loopback, private, link-local,
  multicast, reserved or unspecified (also inside IPv4-mapped, 6to4 and NAT64 IPv6 addresses),
  unless the policy allows private addresses;
* connects to exactly the address it checked (the connection is pinned; the Host header and the
  TLS server name and certificate check still use the host name), so a DNS answer that changes
  between check and connect (DNS rebinding) cannot redirect it;
* follows redirects itself, re-checking each hop's scheme and addresses, up to a limit;
* bounds the whole fetch (every hop, headers and body) by one deadline, `total_timeout`, which is
  `timeout` unless set: a watchdog shuts the fetch's sockets down when it passes, so a server
  dripping bytes (in the headers or the body) costs at most that long; the body is bounded by
  `max_bytes` (Content-Length first, then while streaming);
* turns every failure, expected or not (a malformed redirect `Location` made requests raise
  ValueError), into a RemoteImageError: one bad image costs one warning, never the build;
* accepts only bodies that are recognisably raster images.

Residual risks: `socket.getaddrinfo` itself has no timeout (a hanging resolver stalls the fetch);
a host whose addresses are all public but which forwards to internal services is not detectable.

Bodies are cached on disk by sha256(URL) under `CACHE_DIR/remote/`, each with a small JSON record
beside it (`<hash>.json`: when it was fetched, the server's ETag and Last-Modified). A cached copy
is used without network access for `duration` seconds (`remote: {duration: 1d}`, the default);
after that it is revalidated with a conditional request (If-None-Match / If-Modified-Since): a 304
keeps the copy, a 200 replaces it, and a server that cannot be reached leaves the copy in use.

Failures are remembered too (`<hash>.failed.json`), so that an unreachable image does not cost a
DNS lookup and a timeout on every build: the URL is retried after 10 minutes, then after 20, 40,
... doubling up to once a day (`retry_delay`). `refresh=True` (`blogroto build --refresh-remote`)
ignores remembered failures and revalidates every cached copy now. Delete the folder to forget
everything.

Every read and write in the cache goes through `blogroto.owned_tree.OwnedTree` (never through a
symlink, never outside the cache folder), and every file stored (body, record, failure record) is
reported to `on_store`, with which the build records it in the cache's EntryLedger: gc deletes only
files recorded there.

The modules, from the bottom up: `policy` (RemotePolicy, RemoteImageError), `addresses` (the
resolve-and-refuse check), `connection` (pinned, tracked connections; the Deadline), `download`
(one fetch within the limits), `formats` (what a body is, what to call it), `fetcher`
(RemoteFetcher: the cache of bodies, records and failures). Tests that replace a function (`now`,
`address_refusal`) patch it in the module that calls it, not here.
"""

from blogroto.build.remote.addresses import address_refusal
from blogroto.build.remote.fetcher import (
    FIRST_RETRY,
    MAX_RETRY,
    REMOTE_DIR,
    RemoteFetcher,
    retry_delay,
)
from blogroto.build.remote.formats import suggested_name
from blogroto.build.remote.policy import (
    DEFAULT_DURATION,
    RemoteImageError,
    RemotePolicy,
)

__all__ = ["DEFAULT_DURATION", "FIRST_RETRY", "MAX_RETRY", "REMOTE_DIR", "RemoteFetcher", "RemoteImageError",
           "RemotePolicy", "address_refusal", "retry_delay", "suggested_name"]
