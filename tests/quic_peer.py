"""A QUIC server that puts its server id in the connection IDs it chooses
(draft-ietf-quic-load-balancers: a first octet with the config id, the
server id and a nonce; plaintext, or AES-128-ECB encrypted in one pass), or
a QUIC client that migrates: aioquic on both sides. Run in a namespace.

    quic_peer.py server NAME PORT CERT KEY SID_HEX NONCE_LEN [AES_KEY_HEX]
        answers each stream's data with NAME
    quic_peer.py client HOST PORT MOVES
        asks once, then MOVES times from a new local port (and a new
        connection ID); prints JSON: [[local port, answer], ...]
"""
import asyncio
import json
import os
import socket
import ssl
import sys

from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.quic import connection as quic_connection
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import StreamDataReceived


def lb_cids(sid: bytes, nonce_len: int, key: bytes | None):
    """os.urandom for aioquic's connection module: a connection ID of the
    QUIC-LB form when it asks for one (1 + len(sid) + nonce_len bytes)."""
    length = 1 + len(sid) + nonce_len

    def urandom(n: int) -> bytes:
        if n != length:
            return os.urandom(n)
        body = sid + os.urandom(nonce_len)
        if key is not None:
            from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
            enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
            body = enc.update(body) + enc.finalize()
        return bytes([os.urandom(1)[0] & 0x1f]) + body       # config id 0
    return urandom, length


class Answer(QuicConnectionProtocol):
    name = b""

    def quic_event_received(self, event):
        if isinstance(event, StreamDataReceived) and event.end_stream:
            self._quic.send_stream_data(event.stream_id, self.name, end_stream=True)
            self.transmit()


async def server(name, port, cert, key, sid, nonce_len, aes):
    urandom, length = lb_cids(bytes.fromhex(sid), int(nonce_len),
                              bytes.fromhex(aes) if aes else None)
    quic_connection.os = type("os", (), {"urandom": staticmethod(urandom)})
    config = QuicConfiguration(is_client=False, alpn_protocols=["pylb-test"],
                               connection_id_length=length)
    config.load_cert_chain(cert, key)
    Answer.name = name.encode()
    await serve("0.0.0.0", int(port), configuration=config, create_protocol=Answer)
    print("ready", flush=True)
    await asyncio.Event().wait()


async def ask(protocol) -> str:
    reader, writer = await protocol.create_stream()
    writer.write(b"who?")
    writer.write_eof()
    return (await asyncio.wait_for(reader.read(), 5)).decode()


async def client(host, port, moves):
    config = QuicConfiguration(is_client=True, alpn_protocols=["pylb-test"],
                               verify_mode=ssl.CERT_NONE)
    out = []
    loop = asyncio.get_running_loop()
    async with connect(host, int(port), configuration=config) as protocol:
        out.append([protocol._transport.get_extra_info("sockname")[1], await ask(protocol)])
        for _ in range(int(moves)):
            # A new local port (NAT rebinding, or the client moving), with
            # a new connection ID as RFC 9000 asks of a client that moves.
            sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind(("::", 0))
            old = protocol._transport
            await loop.create_datagram_endpoint(lambda: protocol, sock=sock)
            old.close()
            protocol.change_connection_id()
            try:
                out.append([sock.getsockname()[1], await ask(protocol)])
            except (asyncio.TimeoutError, ConnectionError) as e:
                out.append([sock.getsockname()[1], f"error: {type(e).__name__}"])
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    role, *args = sys.argv[1:]
    asyncio.run(server(*args, *([None] if len(args) == 6 else [])) if role == "server"
                else client(*args))
