#!/usr/bin/python3
"""A WHIP publisher built on GStreamer's webrtcbin: a VP8 test pattern and
an Opus tone, offered to a WHIP endpoint (RFC 9725) with a bearer token.

Usage: gst_whip.py URL TOKEN [--seconds N]

Prints "LOCATION <url>" once the server answered (201), then "CONNECTED"
when ICE and DTLS are up. Runs until SIGTERM or SIGINT (or N seconds),
then DELETEs its session. Run with Debian's /usr/bin/python3 (gi).
"""

import argparse
import os
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("Nice", "0.1")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC, Nice  # noqa: E402

PIPELINE = (
    "webrtcbin name=webrtc bundle-policy=max-bundle "
    "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=20/1 "
    "! videoconvert ! vp8enc deadline=1 keyframe-max-dist=40 target-bitrate=300000 "
    "! rtpvp8pay pt=96 ! application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000 "
    "! webrtc. "
    "audiotestsrc is-live=true wave=sine freq=440 volume=0.3 ! audioconvert ! audioresample "
    "! opusenc ! rtpopuspay pt=111 "
    "! application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 "
    "! webrtc. "
)


def log(*args):
    # One write per line: the tests read these lines from a pipe.
    sys.stdout.write(" ".join(str(a) for a in args) + "\n")
    sys.stdout.flush()


class Publisher:
    def __init__(self, url, token):
        self.url = url
        self.token = token
        self.location = None
        self.loop = GLib.MainLoop()
        self.pipe = Gst.parse_launch(PIPELINE)
        self.webrtc = self.pipe.get_by_name("webrtc")
        # libnice does not gather loopback addresses by itself. Keep the
        # agent objects alive for as long as the pipeline.
        self.ice = self.webrtc.get_property("ice-agent")
        self.agent = self.ice.get_property("agent")
        address = Nice.Address.new()
        address.set_from_string("127.0.0.1")
        self.agent.add_local_address(address)
        self.webrtc.connect("on-negotiation-needed", self.on_negotiation_needed)
        self.webrtc.connect("on-ice-candidate", self.on_ice_candidate)
        self.webrtc.connect("notify::connection-state", self.on_connection_state)
        self.pending = []  # candidates gathered before the answer came
        self.etag = None

    def start(self):
        self.pipe.set_state(Gst.State.PLAYING)
        for i in range(2):
            t = self.webrtc.emit("get-transceiver", i)
            if t is not None:
                t.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)

    def on_negotiation_needed(self, element):
        promise = Gst.Promise.new_with_change_func(self.on_offer_created, element, None)
        element.emit("create-offer", None, promise)

    def on_offer_created(self, promise, element, _):
        promise.wait()
        # Keep the reply alive while its offer is used.
        reply = promise.get_reply()
        offer = reply.get_value("offer")
        text = offer.sdp.as_text()
        element.emit("set-local-description", offer, Gst.Promise.new())
        GLib.idle_add(self.send_offer, text)

    def on_ice_candidate(self, _element, mline, candidate):
        # Called on a streaming thread: hand over to the main loop.
        GLib.idle_add(self.trickle, mline, candidate)

    def trickle(self, mline, candidate):
        """Sends one candidate as a trickle-ICE fragment (RFC 8840) PATCH."""
        if not self.location:
            self.pending.append((mline, candidate))
            return False
        body = f"a=mid:{mline}\r\na={candidate}\r\n"
        headers = {
            "Content-Type": "application/trickle-ice-sdpfrag",
            "Authorization": f"Bearer {self.token}",
        }
        if self.etag:
            headers["If-Match"] = self.etag
        request = urllib.request.Request(self.location, data=body.encode(), method="PATCH", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                log("PATCH", response.status)
        except urllib.error.HTTPError as err:
            log("PATCH", err.code, err.read().decode().strip())
        except OSError as err:
            log("PATCH failed", err)
        return False

    def on_connection_state(self, element, _pspec):
        state = element.get_property("connection-state")
        if state == GstWebRTC.WebRTCPeerConnectionState.CONNECTED:
            log("CONNECTED")
        elif state == GstWebRTC.WebRTCPeerConnectionState.FAILED:
            log("FAILED")

    def send_offer(self, sdp):
        if os.environ.get("WHIP_DEBUG"):
            log("OFFER", sdp)
        request = urllib.request.Request(
            self.url,
            data=sdp.encode(),
            method="POST",
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {self.token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                answer = response.read().decode()
                self.location = urllib.parse.urljoin(self.url, response.headers["Location"])
                log("STATUS", response.status)
                self.etag = response.headers.get("ETag")
                log("ETAG", self.etag)
                for link in response.headers.get_all("Link") or []:
                    log("LINK", link)
        except urllib.error.HTTPError as err:
            log("HTTP", err.code, err.read().decode().strip())
            self.loop.quit()
            return False
        log("LOCATION", self.location)
        if os.environ.get("WHIP_DEBUG"):
            log("ANSWER", answer)
        _, message = GstSdp.SDPMessage.new_from_text(answer)
        description = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, message)
        self.webrtc.emit("set-remote-description", description, Gst.Promise.new())
        for mline, candidate in self.pending:
            self.trickle(mline, candidate)
        self.pending = []
        return False

    def delete(self):
        if not self.location:
            return
        request = urllib.request.Request(
            self.location, method="DELETE", headers={"Authorization": f"Bearer {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                log("DELETED", response.status)
        except urllib.error.HTTPError as err:
            log("DELETE", err.code)
        except OSError as err:
            log("DELETE failed", err)

    def stop(self, *_):
        self.loop.quit()
        return False


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("--seconds", type=float, default=0)
    parser.add_argument("--no-delete", action="store_true")
    args = parser.parse_args()
    Gst.init(None)
    publisher = Publisher(args.url, args.token)
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, publisher.stop)
    if args.seconds > 0:
        GLib.timeout_add(int(args.seconds * 1000), publisher.stop)
    publisher.start()
    publisher.loop.run()
    if not args.no_delete:
        publisher.delete()
    publisher.pipe.set_state(Gst.State.NULL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
