"""A TLS terminator for ``bench/bench_tcp.py``'s ``wss`` config (a tool, not frptw runtime code).

frp's ``wss`` is TLS around the websocket, which frps 0.65 does not terminate on its bind port:
a deployment puts a TLS terminator (nginx and the like) in front of it, and so does the bench.
Run as its own OS process, the same one in front of Go frps and frptw's frps::

    python bench/_tls_terminator.py --port P --target T --cert C --key K

accepts TLS on 127.0.0.1:P and relays the plain bytes to 127.0.0.1:T, both ways, with
backpressure (``drain``), 256 KiB reads; prints ``{"port": P}`` once listening.  asyncio's
streams with the ssl module: OpenSSL does the cryptography, Python only moves buffers.
"""

import argparse
import asyncio
import json
import ssl
import sys

READ = 256 * 1024


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(READ):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def _relay(target: int, client_reader, client_writer) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", target)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(_pump(client_reader, writer), _pump(reader, client_writer))


async def _main(args: argparse.Namespace) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server = await asyncio.start_server(lambda r, w: _relay(args.target, r, w), "127.0.0.1", args.port,
                                        ssl=context, limit=READ)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
