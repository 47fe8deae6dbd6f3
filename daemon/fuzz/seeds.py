#!/usr/bin/env python3
"""Writes the seed corpus of the `single_call` fuzz target (corpus/single_call/).

Each seed is the target's input: byte 0 (cut count k in bits 0-3, the peer's end in bits
4-5, a refusing vigild in bit 6), k little-endian u16 cut offsets, then what a peer of
vigild's private socket sends. The calls are marshalled here as the module builds them
(pam_module/src/socket_call.rs: method call, path /org/vigil1, interface and destination
org.vigil1.Manager / org.vigil1, member, signature, body) after the module's pipelined
handshake for uid 1000. Run from daemon/fuzz: python3 seeds.py
"""

import os
import struct

UID = 1000
HANDSHAKE = b"\0AUTH EXTERNAL " + str(UID).encode().hex().encode() + b"\r\nBEGIN\r\n"


class Writer:
    def __init__(self, big=False):
        self.out = bytearray()
        self.fmt = ">" if big else "<"

    def pad(self, align):
        while len(self.out) % align:
            self.out.append(0)

    def u8(self, v):
        self.out.append(v)

    def u32(self, v):
        self.pad(4)
        self.out += struct.pack(self.fmt + "I", v)

    def u64(self, v):
        self.pad(8)
        self.out += struct.pack(self.fmt + "Q", v)

    def string(self, s):
        b = s.encode() if isinstance(s, str) else s
        self.u32(len(b))
        self.out += b + b"\0"

    def signature(self, s):
        self.u8(len(s))
        self.out += s.encode() + b"\0"

    def value(self, sig, v):
        if sig in "so":
            self.string(v)
        elif sig == "g":
            self.signature(v)
        elif sig == "u":
            self.u32(v)
        elif sig == "t":
            self.u64(v)
        elif sig == "as":
            self.u32(0)
            at = len(self.out) - 4
            start = len(self.out)
            for item in v:
                self.string(item)
            struct.pack_into(self.fmt + "I", self.out, at, len(self.out) - start)
        else:
            raise ValueError(sig)


def split_signature(sig):
    parts, i = [], 0
    while i < len(sig):
        if sig[i] == "a":
            parts.append(sig[i : i + 2])
            i += 2
        else:
            parts.append(sig[i])
            i += 1
    return parts


def method_call(member, sig, args, serial=1, big=False, path="/org/vigil1", interface="org.vigil1.Manager", flags=0):
    body = Writer(big)
    for part, arg in zip(split_signature(sig), args):
        body.value(part, arg)
    fields = [(1, "o", path), (2, "s", interface), (3, "s", member), (6, "s", "org.vigil1")]
    if sig:
        fields.append((8, "g", sig))
    m = Writer(big)
    m.out += b"B" if big else b"l"
    m.u8(1)
    m.u8(flags)
    m.u8(1)
    m.u32(len(body.out))
    m.u32(serial)
    m.u32(0)
    at = len(m.out) - 4
    start = len(m.out)
    for code, vsig, value in fields:
        m.pad(8)
        m.u8(code)
        m.signature(vsig)
        m.value(vsig, value)
    struct.pack_into(m.fmt + "I", m.out, at, len(m.out) - start)
    m.pad(8)
    return bytes(m.out + body.out)


def seed(stream, cuts=(), end=0, refuse=False):
    first = len(cuts) | (end << 4) | (64 if refuse else 0)
    return bytes([first]) + b"".join(struct.pack("<H", c) for c in cuts) + stream


def main():
    open_ex = ("alice", "sshd", "ssh", "203.0.113.7", "", 4242, 7, ["rhost"])
    calls = {
        "open_session_ex": method_call("OpenSessionEx", "sssssuuas", open_ex),
        "open_session": method_call("OpenSession", "sssssuu", open_ex[:7]),
        "close_session": method_call("CloseSession", "t", (12,)),
        "check_reauth": method_call("CheckReauth", "ss", ("sudo", "alice")),
        "record_auth": method_call("RecordAuth", "ss", ("sudo", "alice")),
        "record_auth_failure": method_call("RecordAuthFailure", "s", ("sudo",)),
        "open_session_ex_big_endian": method_call("OpenSessionEx", "sssssuuas", open_ex, big=True),
        "list_sessions": method_call("ListSessions", "", ()),
        "close_session_wrong_path": method_call("CloseSession", "t", (12,), path="/org/vigil1/session/12"),
        "close_session_no_reply": method_call("CloseSession", "t", (12,), flags=1),
        "check_reauth_wrong_signature": method_call("CheckReauth", "s", ("sudo",)),
    }
    out = "corpus/single_call"
    os.makedirs(out, exist_ok=True)
    for name, call in calls.items():
        stream = HANDSHAKE + call
        with open(os.path.join(out, name), "wb") as f:
            f.write(seed(stream))
    call = calls["open_session_ex"]
    stream = HANDSHAKE + call
    extra = {
        # The module's write arriving in pieces: inside the AUTH line, after it, in the header.
        "open_session_ex_cut": seed(stream, cuts=(10, len(HANDSHAKE) - 3, len(HANDSHAKE) + 12)),
        "open_session_ex_silent": seed(stream, end=1),
        "open_session_ex_reset": seed(stream, end=2),
        "open_session_ex_refused": seed(stream, refuse=True),
        # A second call behind the first (zbus serves the rest).
        "two_calls": seed(stream + calls["check_reauth"]),
        # A client that waits for OK, and one that negotiates descriptors.
        "waits_for_ok": seed(b"\0AUTH EXTERNAL 31303030\r\n"),
        "negotiates_fds": seed(b"\0AUTH EXTERNAL 31303030\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n" + call),
        # A header claiming the whole bound.
        "claims_the_limit": seed(HANDSHAKE + b"l\x01\x00\x01" + struct.pack("<II", 16 * 1024, 1) + b"\x00" * 4),
    }
    # A module call exactly at the opening's bound (16 KiB with the handshake), and one
    # byte over it: kept, and left to zbus.
    limit = 16 * 1024
    for name, over in (("at_the_bound", 0), ("over_the_bound", 1)):
        fits = [
            HANDSHAKE + big
            for size in range(limit - 300, limit)
            for tail in range(8)
            for big in [method_call("OpenSessionEx", "sssssuuas", ("a" * size,) + open_ex[1:7] + (["b" * tail],))]
            if len(HANDSHAKE) + len(big) == limit + over
        ]
        if not fits:
            raise SystemExit("no size fits " + name)
        extra[name] = seed(fits[0])
    for name, data in extra.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
