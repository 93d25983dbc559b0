"""Two hosts behind two Linux NATs and a small "internet" between them, in network namespaces.

The xtcp tests need real NATs (wire-protocol.md §9.4; frp-0.65-observed.md "XTCP / nat hole"):

    owner 192.0.2.2 --- 192.0.2.1 [natA] 198.51.100.2 ---+
                                                         [inet] 198.51.100.1 / .129,
    visitor 192.0.2.130 - 192.0.2.129 [natB] 198.51.100.130 -+   servers 203.0.113.1 and .2

* natA/natB masquerade their LAN behind their WAN address: endpoint-independent port
  preserving mappings ("cone", frp's EasyNAT) by default, or ``random`` fully randomised ports
  per destination ("symmetric", HardNAT with irregular changes).
* inet routes between the NATs, owns the servers' addresses (frps, the STUN server on .1 and
  its alternate on .2) and drops forwarded packets with TTL < 16: the path is "long", so frp's
  low-TTL probes die between the NATs as they do on the real internet.
* Counters in inet: UDP bytes forwarded between the two NATs (the P2P traffic) and TCP bytes
  received by the servers' addresses (what went through frps).

TEST-NET addresses only.  Names carry the test process id, so parallel trial workers never
share a namespace.  :meth:`NatTopology.create` runs ``ip``/``nft`` (root); :meth:`destroy`
deletes the namespaces, which removes every link with them.
"""

import json
import os
import shutil
import subprocess
import sys
from typing import Dict, List, Sequence

OWNER_IP = "192.0.2.2"
VISITOR_IP = "192.0.2.130"
SERVER_IP = "203.0.113.1"
ALTERNATE_IP = "203.0.113.2"
NAT_A_WAN = "198.51.100.2"
NAT_B_WAN = "198.51.100.130"

_counter = [0]


def available() -> str:
    """Why the topology cannot be built here ("" when it can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install iproute2 nftables)"
    return ""


def _run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done.stdout


class NatTopology:
    """The five namespaces: ``owner``, ``natA``, ``inet``, ``natB``, ``visitor``."""

    def __init__(self, symmetric: bool = False) -> None:
        _counter[0] += 1
        self.symmetric = symmetric
        tag = f"x{os.getpid() % 100000}n{_counter[0]}"
        roles = {"owner": "o", "natA": "a", "inet": "i", "natB": "b", "visitor": "v"}
        self.ns: Dict[str, str] = {role: f"{tag}{short}" for role, short in roles.items()}
        self._created: List[str] = []

    def exec(self, role: str, *argv: str) -> str:
        return _run("ip", "netns", "exec", self.ns[role], *argv)

    def argv(self, role: str, argv: Sequence[str]) -> List[str]:
        """``argv`` run inside the namespace of ``role``."""
        return ["ip", "netns", "exec", self.ns[role], *argv]

    def _link(self, a: str, a_if: str, a_ip: str, b: str, b_if: str, b_ip: str) -> None:
        tmp_a, tmp_b = f"{self.ns[a]}{a_if}"[-15:], f"{self.ns[b]}{b_if}"[-15:]
        _run("ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
        for role, tmp, name, ip in ((a, tmp_a, a_if, a_ip), (b, tmp_b, b_if, b_ip)):
            _run("ip", "link", "set", tmp, "netns", self.ns[role])
            self.exec(role, "ip", "link", "set", tmp, "name", name)
            self.exec(role, "ip", "addr", "add", ip, "dev", name)
            self.exec(role, "ip", "link", "set", name, "up")

    def create(self) -> None:
        try:
            self._create()
        except BaseException:
            self.destroy()
            raise

    def _create(self) -> None:
        for role, name in self.ns.items():
            _run("ip", "netns", "add", name)
            self._created.append(name)
            self.exec(role, "ip", "link", "set", "lo", "up")
        self._link("owner", "eth0", f"{OWNER_IP}/25", "natA", "lan", "192.0.2.1/25")
        self._link("visitor", "eth0", f"{VISITOR_IP}/25", "natB", "lan", "192.0.2.129/25")
        self._link("natA", "wan", f"{NAT_A_WAN}/25", "inet", "toa", "198.51.100.1/25")
        self._link("natB", "wan", f"{NAT_B_WAN}/25", "inet", "tob", "198.51.100.129/25")
        for ip in (SERVER_IP, ALTERNATE_IP):  # on lo: no dummy interfaces in every kernel
            self.exec("inet", "ip", "addr", "add", f"{ip}/32", "dev", "lo")
        self.exec("owner", "ip", "route", "add", "default", "via", "192.0.2.1")
        self.exec("visitor", "ip", "route", "add", "default", "via", "192.0.2.129")
        self.exec("natA", "ip", "route", "add", "default", "via", "198.51.100.1")
        self.exec("natB", "ip", "route", "add", "default", "via", "198.51.100.129")
        for role in ("natA", "natB", "inet"):
            self.exec(role, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        masquerade = "masquerade random" if self.symmetric else "masquerade"
        for role in ("natA", "natB"):
            self._nft(role, f"""
                table ip nat {{
                    chain post {{ type nat hook postrouting priority srcnat; oifname "wan" {masquerade}; }}
                }}""")
        self._nft("inet", f"""
            table ip lab {{
                counter p2p {{ }}
                counter server {{ }}
                chain forwarding {{
                    type filter hook forward priority filter;
                    ip ttl < 16 drop
                    ip saddr {{ {NAT_A_WAN}, {NAT_B_WAN} }} ip daddr {{ {NAT_A_WAN}, {NAT_B_WAN} }} meta l4proto udp \
counter name p2p
                }}
                chain incoming {{
                    type filter hook input priority filter;
                    ip daddr {{ {SERVER_IP}, {ALTERNATE_IP} }} meta l4proto tcp counter name server
                }}
            }}""")

    def _nft(self, role: str, ruleset: str) -> None:
        done = subprocess.run(self.argv(role, ["nft", "-f", "-"]), input=ruleset, capture_output=True, text=True,
                              timeout=20)
        if done.returncode != 0:
            raise RuntimeError(f"nft in {role} failed: {done.stderr.strip()}")

    def counterBytes(self, name: str) -> int:
        """Bytes counted by the named counter in inet (``p2p`` or ``server``)."""
        out = json.loads(self.exec("inet", "nft", "-j", "list", "counter", "ip", "lab", name))
        for item in out["nftables"]:
            if "counter" in item:
                return int(item["counter"]["bytes"])
        raise RuntimeError(f"no counter {name}")

    def destroy(self) -> None:
        for name in reversed(self._created):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)
        self._created = []


def pythonArgv(module: str, *args: str) -> List[str]:
    """This interpreter running ``python -m module args`` (the checkout is on PYTHONPATH)."""
    return [sys.executable, "-m", module, *args]
