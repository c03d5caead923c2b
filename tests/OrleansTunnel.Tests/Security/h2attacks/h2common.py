"""Shared pieces of the HTTP/2 attack scripts: a raw h2c (prior knowledge) connection and a reader
that reports GOAWAY / connection close. Every script prints one summary line starting with RESULT."""
import socket
import struct
import sys
import threading
import time

import h2.config
import h2.connection
import h2.events

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(ftype, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream_id & 0x7FFFFFFF) + payload


class RawReader(threading.Thread):
    """Reads frames from the server and records GOAWAY, RST_STREAM, HEADERS and close."""

    def __init__(self, sock):
        super().__init__(daemon=True)
        self.sock = sock
        self.goaway = None
        self.closed = threading.Event()
        self.resets = 0
        self.headers = 0
        self.bytes = 0

    def run(self):
        buf = b""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                self.bytes += len(data)
                buf += data
                while len(buf) >= 9:
                    length = struct.unpack(">I", b"\x00" + buf[:3])[0]
                    if len(buf) < 9 + length:
                        break
                    ftype = buf[3]
                    payload = buf[9:9 + length]
                    buf = buf[9 + length:]
                    if ftype == 0x7 and self.goaway is None:
                        last, code = struct.unpack(">II", payload[:8])
                        self.goaway = (last & 0x7FFFFFFF, code, payload[8:].decode("latin1", "replace"))
                    elif ftype == 0x3:
                        self.resets += 1
                    elif ftype == 0x1:
                        self.headers += 1
        except OSError:
            pass
        finally:
            self.closed.set()


def connect(port, settings_payload=b""):
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(PREFACE + frame(0x4, 0, 0, settings_payload))
    return sock


def encoder():
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    conn.data_to_send()
    return conn


def request_block(conn, stream_id, host, path, extra=()):
    """An HPACK-encoded request header block (via h2's encoder)."""
    headers = [(":method", "GET"), (":scheme", "http"), (":authority", host), (":path", path)] + list(extra)
    return conn.encoder.encode(headers)


def report(name, reader, sent, started, extra=""):
    reader.closed.wait(15)
    goaway = "none" if reader.goaway is None else "last_stream=%d code=%d debug=%r" % reader.goaway
    print("RESULT %s goaway=%s closed=%s sent=%d resets_received=%d headers_received=%d elapsed=%.2f %s" % (
        name, "yes" if reader.goaway else "no", reader.closed.is_set(), sent, reader.resets, reader.headers, time.time() - started, extra))
    print("GOAWAY " + goaway)
    sys.stdout.flush()
