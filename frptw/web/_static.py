"""``webServer.assetsDir``: the web UI's files under ``/static/``, as frp serves them.

frp wraps Go's ``http.FileServer`` in its gzip handler and allows ``GET`` only: ``HEAD`` is
405, a missing file is Go's plain-text 404, and the body is gzip-encoded when the caller
accepts it.  Without an assets directory there is nothing to serve here (frp would serve the
UI compiled into its binary, which frptw does not ship): every path is 404.
"""

from typing import Optional

from twisted.web.resource import EncodingResourceWrapper, IResource
from twisted.web.server import GzipEncoderFactory
from twisted.web.static import File

from frptw.web._resources import NotFound


class _Gzipped(EncodingResourceWrapper):
    """One asset file, gzip-encoded for callers that accept it; ``GET`` only."""

    allowedMethods = (b"GET",)

    def __init__(self, file: File) -> None:
        super().__init__(file, [GzipEncoderFactory()])


class _Assets(File):
    """A directory of assets: children are files (wrapped in :class:`_Gzipped`) or further
    directories; anything missing is Go's 404."""

    childNotFound = NotFound()
    forbidden = NotFound()
    allowedMethods = (b"GET",)

    def getChild(self, path: bytes, request) -> IResource:
        child = super().getChild(path, request)
        if isinstance(child, File) and not child.isdir():
            return _Gzipped(child)
        return child

    def directoryListing(self) -> IResource:  # no listings of the assets directory
        return NotFound()


def staticAssets(directory: Optional[str]) -> IResource:
    """The resource for ``/static/``: files under ``directory`` (``assetsDir``), or 404 for
    every path when there is none."""
    if not directory:
        return NotFound()
    return _Assets(directory, defaultType="application/octet-stream")
