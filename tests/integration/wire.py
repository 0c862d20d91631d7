"""A minimal encoder/decoder of the sluice wire protocol (docs/protocol.md) for integration tests:
enough to craft valid, malformed and hostile frames byte by byte, independent of the C++ codec."""

import struct

MAGIC = 0x45434C53
VERSION = 1
HEADER = struct.Struct("<IBBHIIQQ")  # magic, version, type, flags, length, count, client, request

PRODUCE, ACK, RECEIVE, MESSAGES, DELETE, NACK, EXTEND, RESULT, SUBSCRIBE, DELIVER, CREDIT, NAK, \
    FETCH, HEARTBEAT, ERROR, LOOKUP, LOOKUP_REPLY, UNSUBSCRIBE, JOIN_GROUP, GROUP_STATE, COMMIT, \
    OPEN_INBOX, REPLY = range(1, 24)

ERRC = {0: "OK", 1: "MALFORMED", 2: "UNSUPPORTED_VERSION", 3: "UNKNOWN_TYPE", 4: "UNKNOWN_QUEUE",
        5: "UNKNOWN_PARTITION", 6: "MESSAGE_TOO_LARGE", 7: "UNAUTHORIZED", 8: "THROTTLED",
        9: "NOT_PRIMARY", 10: "STORAGE_FAILED", 11: "WRONG_QUEUE_TYPE", 12: "STALE_RECEIPT",
        13: "UNKNOWN_RECEIPT", 14: "OUT_OF_ORDER_SEQUENCE", 15: "OFFSET_OUT_OF_RANGE",
        16: "UNKNOWN_SUBSCRIPTION", 17: "NOT_REPLICATED", 18: "INVALID_ARGUMENT",
        19: "DUPLICATE", 20: "INTERNAL", 21: "UNVERIFIED_SOURCE", 22: "STALE_GENERATION"}


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


def fetch(queue_id, partition, offset, max_messages=100, client=1, request=1, max_frame=1472):
    body = struct.pack("<IHBBQHHI", queue_id, partition, 0, 0, offset, max_messages, max_frame, 0)
    return frame(FETCH, body, client=client, request=request)


def fetch_by_time(queue_id, partition, timestamp_ns, max_messages=100, client=1, request=1,
                  max_frame=1472):
    """FETCH from the first message stamped at or after timestamp_ns (start kind 3)."""
    body = struct.pack("<IHBBQHHI", queue_id, partition, 3, 0, timestamp_ns, max_messages,
                       max_frame, 0)
    return frame(FETCH, body, client=client, request=request)


def subscribe(queue_id, partition, subscription, start_offset=0, credits=1000, client=1,
              request=1):
    """SUBSCRIBE from an offset (start kind 0), no group."""
    body = struct.pack("<QIHBBQII", subscription, queue_id, partition, 0, 0, start_offset,
                       credits, 0)
    return frame(SUBSCRIBE, body, client=client, request=request)


def credit(subscription, partition, next_offset, credits, client=1, request=1):
    body = struct.pack("<QHHIQ", subscription, partition, 0, credits, next_offset)
    return frame(CREDIT, body, client=client, request=request)


def parse_messages(data):
    """MESSAGES/DELIVER frame -> (prefix dict, [(offset, partition, receipt, receive_count,
    payload bytes)])."""
    h = parse_header(data)
    at = HEADER.size
    if h["type"] == MESSAGES:
        queue, part, _, next_offset, hw = struct.unpack_from("<IHHQQ", data, at)
        prefix = dict(queue=queue, partition=part, next_offset=next_offset, high_watermark=hw)
    elif h["type"] == DELIVER:
        sub, queue, part, _, hw = struct.unpack_from("<QIHHQ", data, at)
        prefix = dict(subscription=sub, queue=queue, partition=part, high_watermark=hw)
    else:
        raise AssertionError(f"not MESSAGES/DELIVER: {h}")
    at += 24
    out = []
    fixed = struct.Struct("<IHBBQQIIHHBBBBI")
    for _ in range(h["count"]):
        offset, ts, receipt, producer, part, rc, _ = struct.unpack_from("<QQQQHHI", data, at)
        at += 40
        (length, _, _, flags, seq, _, _, _, key_len, headers_len, dedup_len, reply_len,
         corr_len, group_len, payload_len) = fixed.unpack_from(data, at)
        skip = fixed.size + (8 if flags & 1 else 0) + key_len + headers_len + dedup_len + \
            reply_len + corr_len + group_len
        payload = data[at + skip:at + skip + payload_len]
        out.append((offset, part, receipt, rc, payload))
        at += length
    return prefix, out


class Client:
    """A tiny blocking client for tests: handshake, lookup, produce with retransmission, fetch."""

    def __init__(self, sock, server, client_id=1):
        self.sock, self.server, self.client_id = sock, server, client_id
        self.request_id = 0

    def call(self, data_fn, want_types, attempts=20):
        for _ in range(attempts):
            self.request_id += 1
            self.sock.sendto(data_fn(self.request_id), self.server)
            try:
                while True:
                    data, _ = self.sock.recvfrom(65536)
                    h = parse_header(data)
                    if h["request"] == self.request_id and h["type"] in want_types:
                        return data
            except TimeoutError:
                continue
        raise AssertionError("no reply")

    def handshake(self):
        reply = self.call(lambda r: heartbeat(0, self.client_id, r), (HEARTBEAT,))
        cookie = parse_heartbeat(reply)
        self.call(lambda r: heartbeat(cookie, self.client_id, r), (HEARTBEAT,))

    def lookup(self, name):
        return parse_lookup_reply(self.call(lambda r: lookup(name, self.client_id, r),
                                            (LOOKUP_REPLY,)))

    def fetch_all(self, queue_id, partition, count):
        """Fetches offsets [0, count) of a partition; returns [(offset, payload)]."""
        got = []
        offset = 0
        while offset < count:
            reply = self.call(lambda r: fetch(queue_id, partition, offset, 200, self.client_id, r),
                              (MESSAGES, ERROR))
            if parse_header(reply)["type"] == ERROR:
                raise AssertionError(f"fetch error {parse_error(reply)} at offset {offset}")
            prefix, msgs = parse_messages(reply)
            for m in msgs:
                got.append((m[0], m[4]))
            if not msgs:
                raise AssertionError(f"fetch at {offset} returned nothing (hw "
                                     f"{prefix['high_watermark']})")
            offset = prefix["next_offset"]
        return got
