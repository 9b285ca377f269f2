#!/usr/bin/env python3
"""Writes the seed corpus of each fuzz target into fuzz/corpus/<target>/.

Real-looking inputs: signaling messages as the web client sends them, a
Chromium SDP offer, STUN binding requests signed with the harness's ICE
password (sfu::fuzzing::SFU_PWD), a DTLS ClientHello, RTP and RTCP packets,
and RFC 4571 framed streams. Run from anywhere: python3 fuzz/seeds.py
"""
import hashlib, hmac, json, os, struct, zlib

ROOT = os.path.dirname(os.path.abspath(__file__))
SFU_UFRAG, SFU_PWD, CLIENT_UFRAG = "fuzzSFU1", "fuzzSFUpassword0123456789", "Ab1c"
OFFER = open(os.path.join(ROOT, "../sfu/src/fuzzing/chromium_offer.sdp"), newline="").read()


def write(target, name, data):
    d = os.path.join(ROOT, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def attr(t, v):
    pad = (4 - len(v) % 4) % 4
    return struct.pack("!HH", t, len(v)) + v + b"\0" * pad


def stun(username, pwd, txid=b"fuzzfuzzfuzz", integrity_ok=True, fingerprint=True):
    attrs = attr(0x0006, username.encode())
    attrs += attr(0x802A, struct.pack("!Q", 0x1234567890ABCDEF))  # ICE-CONTROLLING
    attrs += attr(0x0024, struct.pack("!I", 1853817087))  # PRIORITY
    attrs += attr(0x0025, b"")  # USE-CANDIDATE
    # MESSAGE-INTEGRITY over the header with the length up to and including it.
    head = lambda extra: struct.pack("!HHI", 0x0001, len(attrs) + extra, 0x2112A442) + txid
    mac = hmac.new(pwd.encode(), head(24) + attrs, hashlib.sha1).digest()
    if not integrity_ok:
        mac = bytes(b ^ 0x55 for b in mac)
    attrs += attr(0x0008, mac)
    if fingerprint:
        crc = zlib.crc32(head(8) + attrs) ^ 0x5354554E
        attrs += attr(0x8028, struct.pack("!I", crc & 0xFFFFFFFF))
    return head(0) + attrs


def dtls_client_hello():
    random = bytes(range(32))
    suites = struct.pack("!6H", 0xC02B, 0xC02F, 0xCCA9, 0xCCA8, 0xC009, 0xC013)
    exts = b""
    exts += struct.pack("!HH", 0x0017, 0)  # extended master secret
    exts += struct.pack("!HHH", 0x000E, 5, 2) + struct.pack("!HB", 0x0001, 0)  # use_srtp
    exts += struct.pack("!HHH", 0x000A, 6, 4) + struct.pack("!HH", 0x001D, 0x0017)  # groups
    exts += struct.pack("!HHB", 0x000B, 2, 1) + b"\0"  # point formats
    body = struct.pack("!H", 0xFEFD) + random + b"\0" + b"\0"  # no session, no cookie
    body += struct.pack("!H", len(suites)) + suites + b"\x01\x00"
    body += struct.pack("!H", len(exts)) + exts
    hs = struct.pack("!B", 1) + len(body).to_bytes(3, "big") + struct.pack("!H", 0)
    hs += (0).to_bytes(3, "big") + len(body).to_bytes(3, "big") + body
    return struct.pack("!BHH", 22, 0xFEFF, 0) + (0).to_bytes(6, "big") + struct.pack("!H", len(hs)) + hs


def rtp(pt, seq, ts, ssrc, payload, marker=False, ext=None):
    b0 = 0x80 | (0x10 if ext else 0)
    h = struct.pack("!BBHII", b0, (0x80 if marker else 0) | pt, seq, ts, ssrc)
    if ext:
        body = b"".join(bytes([(i << 4) | (len(v) - 1)]) + v for i, v in ext)
        body += b"\0" * ((4 - len(body) % 4) % 4)
        h += struct.pack("!HH", 0xBEDE, len(body) // 4) + body
    return h + payload


def rtcp(pt, fmt, ssrc, body):
    n = (8 + len(body)) // 4 - 1
    return struct.pack("!BBHI", 0x80 | fmt, pt, n, ssrc) + body


VP8_KEY = bytes([0x90, 0x80, 0x00, 0x10, 0x9D, 0x01, 0x2A, 0x80, 0x02, 0xE0, 0x01]) + b"\x11" * 40
VP8_DELTA = bytes([0x90, 0x80, 0x00, 0x11, 0x01]) + b"\x22" * 40
OPUS = b"\xfc\xff\xfe" + b"\x33" * 60
PLI = rtcp(206, 1, 1, struct.pack("!I", 1197503924))
FIR = rtcp(206, 4, 1, struct.pack("!I", 0) + struct.pack("!IB3x", 1197503924, 7))
NACK = rtcp(205, 1, 1, struct.pack("!IHH", 1197503924, 1000, 0b101))
RR = rtcp(201, 1, 1, struct.pack("!IB3sIIII", 1197503924, 12, b"\0\0\x05", 1000, 40, 0x12345678, 0x100))
SR = rtcp(200, 0, 1197503924, struct.pack("!IIIII", 0xE8F0_0000, 0x1000_0000, 90000, 100, 120000))
REMB = rtcp(206, 15, 1, struct.pack("!I", 0) + b"REMB" + bytes([1, 0x0B, 0x71, 0xB0]) + struct.pack("!I", 1197503924))
TWCC = rtcp(205, 15, 1, struct.pack("!IHHI", 1197503924, 10, 3, 0x00010200) + bytes([0x20, 0x03, 0x04, 0x04, 0x08, 0x00, 0x00, 0x00]))
SDES = rtcp(202, 1, 1, bytes([1, 16]) + b"Ud5Xp9FbLwXq3mZp" + b"\0\0")


def main():
    # signaling_message
    msgs = {
        "join": {"type": "join", "room": "standup", "name": "Ada"},
        "offer": {"type": "offer", "sdp": OFFER},
        "answer": {"type": "answer", "sdp": OFFER.replace("a=setup:actpass", "a=setup:active")},
        "candidate": {"type": "candidate", "candidate": {"candidate": "candidate:1840965416 1 udp 2122260223 198.51.100.7 50000 typ host generation 0", "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": CLIENT_UFRAG}},
        "candidate_relay": {"type": "candidate", "candidate": {"candidate": "candidate:9 1 udp 41885439 203.0.113.5 49170 typ relay raddr 0.0.0.0 rport 0", "sdpMid": "0"}},
        "candidate_end": {"type": "candidate", "candidate": None},
        "leave": {"type": "leave"},
        "ping": {"type": "ping"},
        "register": {"type": "register", "name": "Ada", "callId": "ABCD-EFG"},
        "call": {"type": "call", "to": "abcdefg"},
        "accept": {"type": "accept", "call": "c1"},
        "hangup": {"type": "hangup", "call": "c1"},
        "chat": {"type": "chat", "text": "hello \u00e9\u00e8 \U0001F600"},
        "mute": {"type": "mute", "trackId": "8e1f0a33-2b6c-4a51-9f0e-6a2d1c7b5e90", "muted": True},
        "video_preference": {"type": "videoPreference", "trackId": "t3", "width": 640, "height": 360, "maxLayer": "h"},
        "resume": {"type": "resume", "token": "r3sumeT0ken"},
        "track_source": {"type": "trackSource", "trackId": "x", "source": "screen"},
    }
    for name, m in msgs.items():
        write("signaling_message", name, json.dumps(m))
    write("signaling_message", "bad_json", '{"type":"join","room":')
    write("signaling_message", "unknown_type", '{"type":"dance","room":"x"}')
    # sdp
    write("sdp", "chromium_offer", OFFER)
    audio_only = OFFER.split("m=video")[0].replace("BUNDLE 0 1", "BUNDLE 0")
    write("sdp", "audio_only", audio_only)
    sim = OFFER.replace("a=ssrc-group:FID", "a=rid:q send\r\na=rid:h send\r\na=rid:f send\r\na=simulcast:send q;h;f\r\na=ssrc-group:FID")
    write("sdp", "simulcast", sim)
    write("sdp", "restart", OFFER.replace("Ab1c", "Zz9y").replace("cJmPq2BfWbEGiWP3bXrzAZTx", "newPasswordnewPassword12"))
    # demux
    write("demux", "stun_binding", stun(f"{SFU_UFRAG}:{CLIENT_UFRAG}", SFU_PWD))
    write("demux", "stun_bad_integrity", stun(f"{SFU_UFRAG}:{CLIENT_UFRAG}", SFU_PWD, integrity_ok=False))
    write("demux", "stun_unknown_ufrag", stun(f"nobody:{CLIENT_UFRAG}", SFU_PWD))
    write("demux", "stun_truncated", stun(f"{SFU_UFRAG}:{CLIENT_UFRAG}", SFU_PWD)[:30])
    write("demux", "dtls_client_hello", dtls_client_hello())
    write("demux", "rtp_vp8", rtp(96, 1000, 90000, 1197503924, VP8_KEY, True))
    write("demux", "rtcp_pli", PLI + b"\0" * 14)
    write("demux", "garbage", bytes(range(0, 256, 3)))
    # ice_tcp_framing (first byte: the read size)
    frames = b"".join(struct.pack("!H", len(p)) + p for p in [stun(f"{SFU_UFRAG}:{CLIENT_UFRAG}", SFU_PWD), dtls_client_hello(), rtp(111, 5, 960, 2845164371, OPUS)])
    write("ice_tcp_framing", "three_frames", b"\x07" + frames)
    write("ice_tcp_framing", "partial", b"\x01" + frames[:-9])
    write("ice_tcp_framing", "empty_frames", b"\x03" + b"\0\0\0\0" + struct.pack("!H", 3) + b"abc")
    # rtp_rtcp
    write("rtp_rtcp", "vp8_key", rtp(96, 1000, 90000, 1197503924, VP8_KEY, True, ext=[(3, b"\x00\x01"), (4, b"1")]))
    write("rtp_rtcp", "vp8_delta", rtp(96, 1001, 93000, 1197503924, VP8_DELTA))
    write("rtp_rtcp", "opus_level", rtp(111, 7, 960, 2845164371, OPUS, ext=[(1, b"\x9e")]))
    write("rtp_rtcp", "h264_stap_a", rtp(100, 9, 3000, 5, bytes([24, 0, 4, 0x67, 1, 2, 3, 0, 2, 0x68, 1, 0, 3, 0x65, 0x88, 0x80])))
    write("rtp_rtcp", "padding", rtp(96, 1002, 93000, 1197503924, b"\0" * 15 + b"\x10")[:1] .replace(b"\x80", b"\xa0") + rtp(96, 1002, 93000, 1197503924, b"\0" * 15 + b"\x10")[1:])
    for name, p in [("pli", PLI), ("fir", FIR), ("nack", NACK), ("rr_sdes", RR + SDES), ("sr", SR), ("remb", REMB), ("twcc", TWCC), ("compound", RR + PLI + NACK)]:
        write("rtp_rtcp", name, p)


if __name__ == "__main__":
    main()
