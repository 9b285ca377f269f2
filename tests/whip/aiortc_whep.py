"""A WHEP player built on aiortc: offers one recvonly audio and one recvonly
video section to a WHEP endpoint with a bearer token, decodes what comes
back and counts the frames.

Usage: aiortc_whep.py URL TOKEN [--video N] [--audio N] [--timeout S]

Prints "LOCATION <url>" once the server answered (201), "FRAMES video=N
audio=M" every second, "DONE ..." when both counts are reached (or "TIMEOUT
..."), and then DELETEs the session unless --no-delete is given ("DELETED
<status>"). Run with the virtualenv's python that has aiortc.
"""

import argparse
import asyncio
import sys
import urllib.error
import urllib.parse
import urllib.request

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

# aioice skips loopback when gathering; the tests run on loopback only.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


def log(*args):
    # One write per line: the tests read these lines from a pipe.
    sys.stdout.write(" ".join(str(a) for a in args) + "\n")
    sys.stdout.flush()


def http(method, url, token, body=None, content_type=None):
    headers = {"Authorization": f"Bearer {token}"}
    if content_type:
        headers["Content-Type"] = content_type
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read().decode()


async def consume(track, counts):
    while True:
        try:
            await track.recv()
        except MediaStreamError:
            return
        counts[track.kind] += 1


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("--video", type=int, default=60)
    parser.add_argument("--audio", type=int, default=60)
    parser.add_argument("--timeout", type=float, default=30)
    parser.add_argument("--no-delete", action="store_true")
    args = parser.parse_args()

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio", direction="recvonly")
    pc.addTransceiver("video", direction="recvonly")
    counts = {"audio": 0, "video": 0}
    tasks = []

    @pc.on("track")
    def on_track(track):
        log("TRACK", track.kind)
        tasks.append(asyncio.ensure_future(consume(track, counts)))

    @pc.on("connectionstatechange")
    def on_state():
        log("STATE", pc.connectionState)

    await pc.setLocalDescription(await pc.createOffer())
    status, headers, answer = await asyncio.to_thread(
        http, "POST", args.url, args.token, pc.localDescription.sdp.encode(), "application/sdp"
    )
    log("STATUS", status)
    if status != 201:
        log("HTTP", status, answer.strip())
        await pc.close()
        return 1
    location = urllib.parse.urljoin(args.url, headers["Location"])
    log("LOCATION", location)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.timeout
    result = "TIMEOUT"
    while loop.time() < deadline:
        await asyncio.sleep(1)
        log(f"FRAMES video={counts['video']} audio={counts['audio']}")
        if counts["video"] >= args.video and counts["audio"] >= args.audio:
            result = "DONE"
            break
    log(f"{result} video={counts['video']} audio={counts['audio']}")
    if not args.no_delete:
        status, _, _ = await asyncio.to_thread(http, "DELETE", location, args.token)
        log("DELETED", status)
    for task in tasks:
        task.cancel()
    await pc.close()
    return 0 if result == "DONE" else 2


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
