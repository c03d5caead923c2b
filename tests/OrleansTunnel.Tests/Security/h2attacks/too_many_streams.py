"""Open far more concurrent streams than SETTINGS_MAX_CONCURRENT_STREAMS allows, never finishing
them (requests with a body that never ends)."""
import sys
import time

from h2common import RawReader, connect, encoder, frame, report, request_block

port, count = int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 1000
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
        if reader.closed.is_set():
            break
        block = request_block(conn, stream_id, "127.0.0.1", "/hang?id=too-many-" + str(i), [("content-length", "100")])
        batch.append(frame(0x1, 0x4, stream_id, block))  # HEADERS, END_HEADERS, body to follow (never)
        stream_id += 2
        sent += 1
        if len(batch) >= 100:
            sock.sendall(b"".join(batch))
            batch = []
    if batch:
        sock.sendall(b"".join(batch))
except OSError:
    pass
# Give the server time to answer; then report what came back.
reader.closed.wait(5)
report("too_many_streams", reader, sent, started)
