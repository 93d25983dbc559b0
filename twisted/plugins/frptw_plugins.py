"""twistd dropins: ``twistd -n frpc --config frpc.ini`` and ``twistd -n frps --config frps.ini``."""

from twisted.application.service import ServiceMaker

frpc = ServiceMaker("frpc", "frptw.tap.frpc", "frp client (frptw)", "frpc")
frps = ServiceMaker("frps", "frptw.tap.frps", "frp server (frptw)", "frps")
