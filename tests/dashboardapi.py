"""frps dashboard test helpers: a small API client, bounded polling of an endpoint, JSON shapes,
and the frps/frpc configurations the dashboard tests give both frps (ours and Go's).
"""

import json
from typing import Any, Callable, Optional

from twisted.internet import reactor

from tests.support import sleep
from tests.webclient import Response, basic, fetch

USER, PASSWORD = "admin", "s3cret"
TOKEN = "dash-token"


class DashboardClient:
    """Requests to one frps dashboard on 127.0.0.1, with its Basic credentials by default."""

    def __init__(self, port: int, user: str = USER, password: str = PASSWORD) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.credentials = basic(user, password)

    async def request(self, path: str, method: str = "GET", credentials=None) -> Response:
        headers = [credentials or self.credentials] if credentials != () else []
        return await fetch(reactor, self.base + path, method=method, headers=headers)

    async def json(self, path: str) -> Any:
        response = await self.request(path)
        if response.status != 200:
            raise AssertionError(f"{path}: {response.status} {response.body!r}")
        return json.loads(response.body)

    async def until(self, path: str, predicate: Callable[[Any], bool], what: str, timeout: float = 10.0) -> Any:
        """Poll ``path`` (bounded, real time) until its JSON satisfies ``predicate``; return it."""
        deadline = reactor.seconds() + timeout
        while True:
            value = await self.json(path)
            if predicate(value):
                return value
            if reactor.seconds() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}; last {path}: {value}")
            await sleep(0.1)


def shape(value: Any) -> Any:
    """``value`` with every leaf replaced by its JSON type: what two answers must share."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return "null" if value is None else type(value).__name__


def serverConfig(bindPort: int, dashboardPort: int, httpPort: int, httpsPort: int, tcpmuxPort: int,
                 extra: str = "") -> str:
    """An frps TOML with a dashboard (Basic auth, Prometheus) and every vhost."""
    return (
        f'bindAddr = "127.0.0.1"\nbindPort = {bindPort}\nauth.token = "{TOKEN}"\n'
        f"vhostHTTPPort = {httpPort}\nvhostHTTPSPort = {httpsPort}\ntcpmuxHTTPConnectPort = {tcpmuxPort}\n"
        f'subdomainHost = "example.test"\nallowPorts = [{{ start = 1024, end = 65535 }}]\n'
        f'webServer.addr = "127.0.0.1"\nwebServer.port = {dashboardPort}\n'
        f'webServer.user = "{USER}"\nwebServer.password = "{PASSWORD}"\nenablePrometheus = true\n{extra}'
    )


#: The proxies both frpc register, one per type the dashboard lists (xtcp aside: frptw's frps
#: has no xtcp), with settings that show in ``conf``.
PROXY_NAMES = {"tcp": "ssh", "udp": "dns", "http": "web", "https": "secure", "tcpmux": "mux", "stcp": "hidden",
               "sudp": "quiet"}


def clientConfig(bindPort: int, echoPort: int, tcpPort: int, udpPort: int, udpEchoPort: int,
                 user: Optional[str] = None) -> str:
    """A Go frpc TOML with one proxy of each type of :data:`PROXY_NAMES`."""
    return (
        f'serverAddr = "127.0.0.1"\nserverPort = {bindPort}\nauth.token = "{TOKEN}"\nloginFailExit = false\n'
        + (f'user = "{user}"\n' if user else "")
        + f'[[proxies]]\nname = "ssh"\ntype = "tcp"\nlocalPort = {echoPort}\nremotePort = {tcpPort}\n'
        'metadatas.owner = "bob"\nannotations.note = "<&>"\ntransport.useEncryption = true\n'
        f'[[proxies]]\nname = "dns"\ntype = "udp"\nlocalPort = {udpEchoPort}\nremotePort = {udpPort}\n'
        'transport.bandwidthLimit = "1MB"\ntransport.bandwidthLimitMode = "server"\n'
        f'[[proxies]]\nname = "web"\ntype = "http"\nlocalPort = {echoPort}\ncustomDomains = ["web.test"]\n'
        'locations = ["/a", "/b"]\nhostHeaderRewrite = "inner"\ntransport.useCompression = true\n'
        f'[[proxies]]\nname = "secure"\ntype = "https"\nlocalPort = {echoPort}\nsubdomain = "sec"\n'
        f'[[proxies]]\nname = "mux"\ntype = "tcpmux"\nmultiplexer = "httpconnect"\nlocalPort = {echoPort}\n'
        'customDomains = ["mux.test"]\nrouteByHTTPUser = "joe"\nloadBalancer.group = "g"\nloadBalancer.groupKey = "k"\n'
        f'[[proxies]]\nname = "hidden"\ntype = "stcp"\nsecretKey = "sk1"\nlocalPort = {echoPort}\n'
        f'[[proxies]]\nname = "quiet"\ntype = "sudp"\nsecretKey = "sk2"\nallowUsers = ["*"]\nlocalPort = {udpEchoPort}\n'
    )
