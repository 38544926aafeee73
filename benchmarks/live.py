"""Live events, measured from a client process of its own: commit-to-delivery latency and fan-out.

run.py calls `latency` and `fanout` from its own process (the servers run as theirs). `fanout` starts this
file as a second client process, `python benchmarks/live.py burst PORT COUNT CONCURRENCY`, that sends the
burst of `POST /items` while run.py's process only receives, so neither waits for the other's CPU time.

Times are `time.monotonic()`: CLOCK_MONOTONIC on Linux, one clock for every process of the machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

HOST = "127.0.0.1"
ITEM = {"name": "live", "quantity": 1}
EVENT_TIMEOUT = 10.0  # seconds an event may take to arrive before the measurement fails
GAP = (0.005, 0.105)  # seconds between one sample's event and the next POST: at random across a 0.1 s poll


class LiveError(RuntimeError):
    """An event went missing, came twice or out of order, or a subscriber was closed."""


@dataclass
class Latency:
    """One sample per POST: seconds from its 201 (and from sending it) to its event reaching the subscriber."""

    after_response: list[float] = field(default_factory=list)
    after_request: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Fanout:
    """A burst of creates delivered to many subscribers."""

    subscribers: int
    events: int
    posted_s: float  # first POST sent to last 201 received
    delivered_s: float  # first POST sent to the last subscriber's last event
    drained_s: float  # last 201 received to the last subscriber's last event
    server_cpu_s: float  # the server process's CPU time from the first POST sent to the last event received

    @property
    def rate(self) -> float:
        """Events received by all subscribers per second."""
        return self.subscribers * self.events / self.delivered_s

    @property
    def server_us_per_frame(self) -> float:
        """The server's CPU time per frame sent (the POSTs' share included)."""
        return self.server_cpu_s / (self.subscribers * self.events) * 1e6

    @property
    def server_busy(self) -> float:
        """The server's CPU time as a share of one core over the delivery."""
        return self.server_cpu_s / self.delivered_s


def url(port: int, path: str) -> str:
    return f"http://{HOST}:{port}{path}"


async def subscribe(session: aiohttp.ClientSession, port: int) -> aiohttp.ClientWebSocketResponse:
    """A websocket on /events that the server has subscribed: a ping answered from inside its subscription."""
    ws = await session.ws_connect(url(port, "/events"), autoping=True, max_msg_size=0)
    await ws.send_str('{"type": "ping"}')
    while True:  # the events of writes just before may come first: the subscription is live, they are no sample's
        reply = await ws.receive(timeout=EVENT_TIMEOUT)
        frame = json.loads(reply.data) if reply.type is aiohttp.WSMsgType.TEXT else None
        if frame == {"type": "pong"}:
            return ws
        if not isinstance(frame, dict) or frame.get("type") not in ("item.created", "item.deleted"):
            raise LiveError(f"/events answered a ping with {reply.type.name} {reply.data!r}")


def created(message: aiohttp.WSMessage) -> tuple[int, int]:
    """The event id and item id of an item.created frame."""
    if message.type is not aiohttp.WSMsgType.TEXT:
        raise LiveError(f"the subscriber got {message.type.name} {message.data!r} {message.extra!r}")
    frame = json.loads(message.data)
    if frame.get("type") != "item.created":
        raise LiveError(f"unexpected frame {frame!r}")
    return frame["id"], frame["item"]["id"]


async def latency(post_port: int, listen_port: int, samples: int, warmup: int = 0, seed: int = 1) -> Latency:
    """POST /items to `post_port` one at a time, each once the previous event has arrived at a subscriber on
    `listen_port` and a random GAP has passed; the first `warmup` samples are not kept."""
    gaps = random.Random(seed)
    result = Latency()
    async with aiohttp.ClientSession() as session:
        ws = await subscribe(session, listen_port)
        arrivals: asyncio.Queue[tuple[int, float]] = asyncio.Queue()

        async def receive() -> None:  # stamps each frame as it comes, whatever the poster is doing
            try:
                async for message in ws:
                    arrivals.put_nowait((created(message)[1], time.monotonic()))
            finally:
                arrivals.put_nowait((0, 0.0))  # closed, or a frame that is no event: the waiting sample fails

        receiver = asyncio.create_task(receive())
        try:
            for sample in range(warmup + samples):
                sent = time.monotonic()
                async with session.post(url(post_port, "/items"), json=ITEM) as response:
                    item = await response.json()
                    answered = time.monotonic()
                if response.status != 201:
                    raise LiveError(f"POST /items answered {response.status} {item!r}")
                item_id, arrival = await asyncio.wait_for(arrivals.get(), EVENT_TIMEOUT)
                while 0 < item_id < item["id"]:  # made before the subscription, which the other process saw late
                    item_id, arrival = await asyncio.wait_for(arrivals.get(), EVENT_TIMEOUT)
                if item_id != item["id"]:
                    detail = f"stopped ({ws.close_code}, {receiver})" if item_id == 0 else f"got item {item_id}'s"
                    raise LiveError(f"waiting for item {item['id']}'s event, the subscriber {detail}")
                if sample >= warmup:
                    result.after_response.append(arrival - answered)
                    result.after_request.append(arrival - sent)
                await asyncio.sleep(gaps.uniform(*GAP))
        finally:
            receiver.cancel()
            await ws.close()
    return result


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (Linux's /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def fanout(port: int, subscribers: int, events: int, concurrency: int, server_pid: int) -> Fanout:
    """`subscribers` websockets on `port`; another process sends `events` creates, `concurrency` at a time;
    every subscriber must get every event, in order, once (ids only grow: the burst is the only writer).
    `server_pid`: the process serving `port`, whose CPU time is taken."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        sockets = [await subscribe(session, port) for _ in range(subscribers)]
        ends: list[float] = []

        async def drain(ws: aiohttp.ClientWebSocketResponse) -> None:
            last = 0
            for _ in range(events):
                event_id, _item_id = created(await ws.receive())
                if event_id <= last:
                    raise LiveError(f"event {event_id} came after {last}")
                last = event_id
            ends.append(time.monotonic())

        receivers = asyncio.gather(*(drain(ws) for ws in sockets))
        command = [sys.executable, str(Path(__file__).resolve()), "burst", str(port), str(events), str(concurrency)]
        poster = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE)
        cpu_before = cpu_seconds(server_pid)  # the poster is still starting: the server idles until its first POST
        try:
            async with asyncio.timeout(EVENT_TIMEOUT + events / 50):
                output, _ = await poster.communicate()
                if poster.returncode != 0:
                    raise LiveError(f"the burst of POST /items failed (exit {poster.returncode})")
                await receivers
            cpu_after = cpu_seconds(server_pid)
        finally:
            receivers.cancel()
            if poster.returncode is None:
                poster.kill()
                await poster.wait()
            await asyncio.gather(*(ws.close() for ws in sockets))
    burst = json.loads(output)
    return Fanout(
        subscribers,
        events,
        posted_s=burst["finished"] - burst["started"],
        delivered_s=max(ends) - burst["started"],
        drained_s=max(ends) - burst["finished"],
        server_cpu_s=cpu_after - cpu_before,
    )


async def burst(port: int, count: int, concurrency: int) -> dict[str, float]:
    """Send `count` POST /items, `concurrency` at a time; when the first was sent and the last answered."""
    remaining = iter(range(count))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker() -> None:
            for _ in remaining:
                async with session.post(url(port, "/items"), json=ITEM) as response:
                    await response.read()
                if response.status != 201:
                    raise LiveError(f"POST /items answered {response.status}")

        await session.get(url(port, "/health"))  # the connection pool warm before the clock starts
        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return {"started": started, "finished": time.monotonic()}


if __name__ == "__main__":
    _, command, *arguments = sys.argv
    if command != "burst":
        sys.exit(f"usage: {sys.argv[0]} burst PORT COUNT CONCURRENCY")
    port, count, concurrency = map(int, arguments)
    print(json.dumps(asyncio.run(burst(port, count, concurrency))))
