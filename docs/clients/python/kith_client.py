"""A kith client written from docs/PROTOCOL.md alone, in another language.

It speaks libp2p through py-libp2p (TCP, noise, yamux), encodes postcard by
hand, and signs with the libp2p ed25519 key it connects with, which is the
user's identity (PROTOCOL.md 4.1). It registers a user, creates or joins a
room, sends messages, pages the room's history, and checks every message's
signature proof. Nothing in it comes from kith's Rust code.

    pip install libp2p==0.8.1
    python kith_client.py /ip4/127.0.0.1/tcp/PORT/p2p/12D3KooW... NAME ROOM TEXT...

Exits 0 when every step got the answer PROTOCOL.md promises, 1 otherwise.
"""

import os
import secrets
import struct
import sys
import time

import multiaddr
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.peerinfo import info_from_p2p_addr
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

CLIENT_PROTOCOL = "/kith/client/1"
FRAME_BYTES_MAX = 1_052_672
VERSION = 1


# --- postcard (PROTOCOL.md section 1) -------------------------------------

def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def blob(b):
    return varint(len(b)) + b


def string(s):
    return blob(s.encode())


def option(value, encode):
    return b"\x00" if value is None else b"\x01" + encode(value)


class Reader:
    def __init__(self, data):
        self.data, self.at = data, 0

    def take(self, n):
        if self.at + n > len(self.data):
            raise ValueError("length runs past the end")
        out = self.data[self.at:self.at + n]
        self.at += n
        return out

    def varint(self):
        n, shift = 0, 0
        while True:
            byte = self.take(1)[0]
            n |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return n
            if shift > 63:
                raise ValueError("varint too long")

    def bool(self):
        b = self.take(1)[0]
        if b > 1:
            raise ValueError("bad bool")
        return b == 1

    def blob(self):
        return self.take(self.varint())

    def string(self):
        return self.blob().decode()

    def option(self, decode):
        return decode() if self.bool() else None

    def vec(self, decode):
        return [decode() for _ in range(self.varint())]

    def done(self):
        if self.at != len(self.data):
            raise ValueError(f"{len(self.data) - self.at} trailing bytes")


# --- IM types (PROTOCOL.md section 4) -------------------------------------

def group(name):
    return varint(0) + string(name)  # RoomId::Group


def time_ordered_id(unix_ms):
    """A UUID version 7 (PROTOCOL.md: ids that grow with time are cheaper
    for the replicas to index than random ones)."""
    raw = bytearray(unix_ms.to_bytes(6, "big") + secrets.token_bytes(10))
    raw[6] = 0x70 | (raw[6] & 0x0F)  # version 7
    raw[8] = 0x80 | (raw[8] & 0x3F)  # RFC 4122 variant
    return bytes(raw)


def command_body(op):
    """CommandBody { version, command_id, issued_at_ms, op }."""
    now_ms = int(time.time() * 1000)
    return varint(VERSION) + blob(time_ordered_id(now_ms)) + varint(now_ms) + op


def register(name):
    return varint(0) + string(name)


def create_room(name):
    return varint(1) + string(name) + varint(0)  # Visibility::Public


def join(room):
    return varint(3) + group(room)


def send(room, text):
    return varint(11) + varint(0) + group(room) + string(text)  # Target::Room


def signed_command(key_pair, body):
    author = key_pair.public_key.to_bytes()
    signature = key_pair.private_key.sign(body)
    return author + blob(body) + blob(signature)


def history(room, after, limit):
    # QueryKind::History { room, after, before: None, limit }
    return varint(0) + group(room) + option(after, varint) + option(None, varint) + varint(limit)


def read_room(r):
    kind = r.varint()
    if kind == 0:
        return "#" + r.string()
    if kind == 1:
        return "@" + r.take(32).hex()[:8] + "+" + r.take(32).hex()[:8]
    raise ValueError(f"RoomId variant {kind}")


IM_ERRORS = {
    0: ("Malformed", []), 1: ("NotRegistered", []), 2: ("InvalidName", ["s"]),
    3: ("NameTaken", ["s"]), 4: ("RoomExists", ["s"]), 5: ("NoSuchRoom", []),
    6: ("NoSuchUser", []), 7: ("NotMember", []), 8: ("AlreadyMember", []),
    9: ("NotInvited", []), 10: ("Banned", []), 11: ("Forbidden", ["n"]),
    12: ("DirectRoom", []), 13: ("NoSuchMessage", []), 14: ("NotAuthor", []),
    15: ("Deleted", []), 16: ("BadLength", ["s", "n"]), 17: ("LimitReached", ["s"]),
    18: ("Expired", ["n", "n"]), 19: ("LastOwner", []), 20: ("BadCursor", []),
    21: ("NotBanned", []), 22: ("Unavailable", ["s"]),
    23: ("BadFile", ["file"]), 24: ("QuotaExceeded", ["n", "n", "n"]),
    25: ("FileNotStored", []), 26: ("StoreFailed", ["s"]),
    27: ("NoSuchRequest", []), 28: ("NotContact", []), 29: ("Yourself", []),
    30: ("YouBlock", []), 31: ("RateLimited", ["s", "n"]),
}

RELATIONS = ["None", "Contact", "RequestSent", "RequestReceived", "Blocked"]

# FileInfoError: Name { max }, MediaType { max }, TooLarge { size_bytes, max }.
FILE_INFO_ERRORS = {0: ("Name", 1), 1: ("MediaType", 1), 2: ("TooLarge", 2)}


def read_im_error(r):
    name, fields = IM_ERRORS[r.varint()]
    values = []
    for f in fields:
        if f == "s":
            values.append(r.string())
        elif f == "file":
            why, count = FILE_INFO_ERRORS[r.varint()]
            values.append((why, *[r.varint() for _ in range(count)]))
        else:
            values.append(r.varint())
    return ("error", name, *values)


def read_receipt(r):
    kind = r.varint()
    if kind == 0:
        return ("Registered", r.string())
    if kind in (1, 2, 3):
        return (["Appended", "Updated", "ReadUpTo"][kind - 1], read_room(r), r.varint())
    if kind == 4:  # Held { file: FileId }
        return ("Held", r.take(32), r.varint())
    if kind == 5:  # Relation { user, relation }
        return ("Relation", r.take(32), RELATIONS[r.varint()])
    if kind == 6:  # ReadsShared { share }
        return ("ReadsShared", r.bool())
    if kind == 7:  # InviteDeclined { room }
        return ("InviteDeclined", read_room(r))
    raise ValueError(f"Receipt variant {kind}")


def read_entry(r):
    seq, time_ms, author = r.varint(), r.varint(), r.take(32)
    kind = r.varint()
    entry = {"seq": seq, "time_ms": time_ms, "author": author, "kind": kind}
    if kind == 0:
        read_message(r, entry)
    elif kind == 1:
        r.varint()
    elif 2 <= kind <= 7:
        entry["user"] = r.take(32)
    elif kind == 8:
        entry["user"], entry["role"] = r.take(32), r.varint()
    elif kind in (9, 10):
        entry["title"] = r.string()
    elif kind == 11:  # File(FileEntry { file: FileInfo, message })
        entry["file_root"], entry["file_size"] = r.take(32), r.varint()
        entry["file_name"], entry["media_type"] = r.string(), r.string()
        read_message(r, entry)
    elif kind == 12:  # Hidden: by a user the reader blocks
        pass
    else:
        raise ValueError(f"EntryKind variant {kind}")
    return entry


def read_message(r, entry):
    """Message { msg_id, text, proof, edits, deleted, reactions } into entry."""
    entry["msg_id"] = r.blob()
    entry["text"] = r.string()
    entry["proof"] = (r.blob(), r.blob())
    entry["edits"] = r.varint()
    entry["deleted"] = r.bool()
    entry["reactions"] = r.vec(lambda: (r.string(), r.vec(lambda: r.take(32))))


def read_response(payload):
    """ResponseFrame { request_id, response } behind its version."""
    r = Reader(payload)
    if r.varint() != VERSION:
        raise ValueError("unsupported version")
    request_id, kind = r.varint(), r.varint()
    if kind == 0:  # Applied(CommandOutcome)
        command_id = r.blob()
        result = read_receipt(r) if r.varint() == 0 else read_im_error(r)
        answer = ("Applied", command_id, result, r.bool())
    elif kind == 1:
        answer = ("NotLeader", r.option(r.varint))
    elif kind == 2:
        answer = ("Retry", r.bool())
    elif kind == 3:
        answer = ("Busy",)
    elif kind == 4:
        answer = ("Refused", r.varint())
    elif kind == 5:  # Answer(QueryResult)
        if r.varint() != 0:
            answer = ("Answer", read_im_error(r))
        elif r.varint() != 0:
            raise ValueError("expected a Page")
        else:
            entries = r.vec(lambda: read_entry(r))
            answer = ("Answer", ("Page", entries, r.option(r.varint)))
    elif kind == 7:
        answer = ("BadRequest", r.string())
    elif kind == 13:  # RateLimited { retry_after_ms }
        answer = ("RateLimited", r.varint())
    else:
        raise ValueError(f"ClientResponse variant {kind}")
    r.done()
    return request_id, answer


# --- transport (PROTOCOL.md sections 5 and 6) -----------------------------

async def read_exactly(stream, n):
    out = b""
    while len(out) < n:
        chunk = await stream.read(n - len(out))
        if not chunk:
            raise EOFError("stream closed early")
        out += chunk
    return out


async def exchange(host, peer, request_id, request):
    """One request stream: write a frame, read the one frame back."""
    payload = varint(VERSION) + varint(request_id) + request
    stream = await host.new_stream(peer, [CLIENT_PROTOCOL])
    try:
        await stream.write(struct.pack(">I", len(payload)) + payload)
        (length,) = struct.unpack(">I", await read_exactly(stream, 4))
        if length > FRAME_BYTES_MAX:
            raise ValueError(f"response of {length} bytes")
        got_id, answer = read_response(await read_exactly(stream, length))
    finally:
        await stream.close()
    if got_id != request_id:
        raise ValueError(f"response to request {got_id}, expected {request_id}")
    return answer


async def submit(host, peer, key_pair, op, ids):
    """Submits one signed command, resending the same bytes until applied."""
    request = varint(0) + signed_command(key_pair, command_body(op))
    pause = 0.025
    for _ in range(40):
        answer = await exchange(host, peer, next(ids), request)
        if answer[0] == "Applied":
            return answer
        if answer[0] == "RateLimited":  # the same bytes, after the wait named
            await trio.sleep(answer[1] / 1000)
            continue
        if answer[0] not in ("NotLeader", "Retry", "Busy"):
            raise RuntimeError(f"refused: {answer}")
        await trio.sleep(pause)
        pause = min(pause * 2, 1.0)
    raise RuntimeError("never applied")


def verified(entry):
    body, signature = entry["proof"]
    try:
        VerifyKey(entry["author"]).verify(body, signature)
        return True
    except BadSignatureError:
        return False


async def session(addr, name, room, texts):
    info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
    key_pair = create_new_key_pair(os.urandom(32))
    host = new_host(key_pair=key_pair)
    ids = iter(range(1, 1 << 30))
    ok = True
    async with host.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        await host.connect(info)
        print("connected as", host.get_id().pretty())
        answer = await submit(host, info.peer_id, key_pair, register(name), ids)
        print("register:", answer[2])
        ok &= answer[2] == ("Registered", name)
        answer = await submit(host, info.peer_id, key_pair, create_room(room), ids)
        if answer[2][:2] == ("error", "RoomExists"):
            answer = await submit(host, info.peer_id, key_pair, join(room), ids)
        print("room:", answer[2])
        sent = []
        for text in texts:
            answer = await submit(host, info.peer_id, key_pair, send(room, text), ids)
            print("send:", answer[2], "duplicate" if answer[3] else "")
            ok &= answer[2][0] == "Appended"
            sent.append((answer[1], answer[2][2], text))
        mine = {}
        after = None
        while True:
            answer = await exchange(host, info.peer_id, next(ids), varint(1) + history(room, after, 2))
            _, entries, after = answer[1]
            for e in entries:
                if e["kind"] == 0:
                    mine[e["msg_id"]] = (e["seq"], e["text"], verified(e))
            if after is None:
                break
        for msg_id, seq, text in sent:
            got = mine.get(msg_id)
            print(f"history: seq {seq} {text!r} ->", got)
            ok &= got == (seq, text, True)
    return ok


def main():
    if len(sys.argv) < 5:
        print(__doc__)
        sys.exit(2)
    ok = trio.run(session, sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
    print("ok" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
