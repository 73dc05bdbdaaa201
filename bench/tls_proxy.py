"""A TLS-terminating TCP proxy: what makes a local emulator look like an AWS endpoint to the SDK.

Usage: tls_proxy.py CERT KEY UPSTREAM_PORT

Listens on a free loopback port (printed on stdout once ready) with the certificate CERT,
and forwards every connection's bytes to 127.0.0.1:UPSTREAM_PORT. scripts/cold-start puts it
in front of moto so that the first request of a cold process pays for a real TLS handshake.
"""

import asyncio
import ssl
import sys


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def main():
    cert, key, upstream = sys.argv[1], sys.argv[2], int(sys.argv[3])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    async def handle(client_reader, client_writer):
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", upstream)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, writer), pipe(reader, client_writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
