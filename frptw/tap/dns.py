"""frpc's ``dnsServer``: names resolved through that DNS server, after the hosts file.

Go frpc 0.65 replaces Go's default resolver when ``dnsServer`` is set (``host`` or
``host:port``, port 53 by default), so every name the process looks up -- the server address,
local services, health checks, plugins, STUN servers -- goes to that server over UDP (TCP when
an answer is truncated), with ``/etc/hosts`` still read first.  Here the same resolver is built
from ``twisted.names`` (the hosts file, a cache, and a client of that one server, without
``/etc/resolv.conf``'s servers) and installed on the reactor, which is where Twisted's
endpoints and ``reactor.resolve`` ask.  That is an effect on the whole process, so the tap
installs it; an application embedding frpc that wants it calls :func:`resolverFor` and installs
the result on its reactor itself.

Go's lookup of a name that is not an IP address would itself go through the replaced resolver
and fail; frptw keeps the system resolver then, and the configuration loader warns.
"""

from typing import Tuple

from twisted.internet.interfaces import IReactorPluggableResolver, IResolver
from twisted.names import cache, client, hosts, resolve

from frptw.logs import FrpLogger
from frptw.wire.hostport import dns_server_address

_log = FrpLogger(namespace="frptw.client")

HOSTS_FILE = b"/etc/hosts"


def resolverFor(address: Tuple[str, int], reactor, hostsFile: bytes = HOSTS_FILE) -> IResolver:
    """The hosts file, then a cache, then the DNS server at ``address`` (and no other)."""
    return resolve.ResolverChain([
        hosts.Resolver(hostsFile),
        cache.CacheResolver(reactor=reactor),
        client.Resolver(servers=[address], reactor=reactor),
    ])


def installDNSServer(reactor: IReactorPluggableResolver, text: str) -> bool:
    """Make ``reactor`` resolve names through the ``dnsServer`` ``text``; False (and nothing
    changed) when it is not an IP address with an optional port."""
    address = dns_server_address(text)
    if address is None:
        return False
    reactor.installResolver(resolverFor(address, reactor))
    _log.info("names are resolved through the DNS server {address}", address=text)
    return True
