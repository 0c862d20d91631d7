"""A minimal encoder/decoder of the sluice wire protocol (docs/protocol.md) for integration tests:
enough to craft valid, malformed and hostile frames byte by byte, independent of the C++ codec."""

import struct

MAGIC = 0x45434C53
VERSION = 1
HEADER = struct.Struct("<IBBHIIQQ")  # magic, version, type, flags, length, count, client, request

PRODUCE, ACK, RECEIVE, MESSAGES, DELETE, NACK, EXTEND, RESULT, SUBSCRIBE, DELIVER, CREDIT, NAK, \
    FETCH, HEARTBEAT, ERROR, LOOKUP, LOOKUP_REPLY, UNSUBSCRIBE = range(1, 19)

ERRC = {0: "OK", 1: "MALFORMED", 2: "UNSUPPORTED_VERSION", 3: "UNKNOWN_TYPE", 4: "UNKNOWN_QUEUE",
        5: "UNKNOWN_PARTITION", 6: "MESSAGE_TOO_LARGE", 7: "UNAUTHORIZED", 8: "THROTTLED",
        9: "NOT_PRIMARY", 10: "STORAGE_FAILED", 11: "WRONG_QUEUE_TYPE", 12: "STALE_RECEIPT",
        13: "UNKNOWN_RECEIPT", 14: "OUT_OF_ORDER_SEQUENCE", 15: "OFFSET_OUT_OF_RANGE",
        16: "UNKNOWN_SUBSCRIPTION", 17: "NOT_REPLICATED", 18: "INVALID_ARGUMENT",
        19: "DUPLICATE", 20: "INTERNAL", 21: "UNVERIFIED_SOURCE"}


def frame(ftype, body, count=0, client=1, request=1, flags=0):
    return HEADER.pack(MAGIC, VERSION, ftype, flags, HEADER.size + len(body), count, client,
                       request) + body


def heartbeat(cookie=0, client=1, request=1):
    return frame(HEARTBEAT, struct.pack("<QQII", cookie, 0, 1000, 0), client=client,
                 request=request)


def lookup(name, client=1, request=1):
    n = name.encode()
    return frame(LOOKUP, struct.pack("<BBHIQ", len(n), 0, 0, 0, 0) + n, client=client,
                 request=request)


def message(payload, partition=0, sequence=0, key=b""):
    fixed = struct.Struct("<IHBBQQIIHHBBBBI")
    length = fixed.size + len(key) + len(payload)
    return fixed.pack(length, partition, 0, 0, sequence, 0, 0, 0, len(key), 0, 0, 0, 0, 0,
                      len(payload)) + key + payload


def produce(queue_id, payloads, producer=0, first_sequence=0, partition=0, client=1, request=1):
    records = b"".join(message(p, partition, first_sequence + i) for i, p in enumerate(payloads))
    return frame(PRODUCE, struct.pack("<IIQ", queue_id, 0, producer) + records,
                 count=len(payloads), client=client, request=request)


def parse_header(data):
    if len(data) < HEADER.size:
        raise ValueError(f"short frame ({len(data)} bytes)")
    magic, version, ftype, flags, length, count, client, request = HEADER.unpack_from(data)
    return dict(magic=magic, version=version, type=ftype, flags=flags, length=length, count=count,
                client=client, request=request)


def parse_error(data):
    h = parse_header(data)
    assert h["type"] == ERROR, h
    errc, = struct.unpack_from("<H", data, HEADER.size)
    return ERRC.get(errc, str(errc))


def parse_heartbeat(data):
    cookie, ts, interval, _ = struct.unpack_from("<QQII", data, HEADER.size)
    return cookie


def parse_lookup_reply(data):
    queue_id, partitions = struct.unpack_from("<IH", data, HEADER.size)
    return queue_id, partitions


def parse_acks(data):
    """ACK frame -> list of (partition, errc name, count, first_sequence, first_offset)."""
    h = parse_header(data)
    assert h["type"] == ACK, h
    out = []
    at = HEADER.size + 16
    for _ in range(h["count"]):
        part, errc, count, seq, off = struct.unpack_from("<HHIQQ", data, at)
        out.append((part, ERRC.get(errc, str(errc)), count, seq, off))
        at += 24
    return out
