#!/usr/bin/env python3
"""A StasisBroadcast agent: one ARI application connected to several Asterisk
servers, claiming each offered call on the server that holds it.

    python agent.py --app sales --user ari --password secret \\
        http://pbx1:8088 http://pbx2:8088

Each call it wins is answered, hears a short tone and is hung up: a real agent
does its work there. It prints one JSON object per line (what it did, and on
which server) and stops cleanly on SIGTERM or Ctrl-C.
"""
import argparse
import asyncio
import json
import signal
import sys

import aiohttp

MEDIA = "tone:ring"  # needs no sound files; any ARI media URI works
PLAY_SECONDS = 0.5   # a tone plays until stopped, so it is stopped after this


def say(**fields):
    print(json.dumps(fields), flush=True)


class Agent:
    def __init__(self, http, app, servers):
        self.http = http          # one session; its Basic auth goes to every server
        self.app = app
        self.servers = servers    # asterisk_id -> base URL, learnt at start
        self.tasks = set()        # claims and calls in progress

    def spawn(self, coroutine):
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def listen(self, url):
        """Keeps one WebSocket to one server open, reconnecting if it drops."""
        while True:
            try:
                async with self.http.ws_connect(url.replace("http", "ws", 1) + "/ari/events",
                                                params={"app": self.app}) as ws:
                    say(event="connected", app=self.app, server=url)
                    async for message in ws:
                        if message.type == aiohttp.WSMsgType.TEXT:
                            self.dispatch(json.loads(message.data))
                say(event="disconnected", app=self.app, server=url)
            except aiohttp.ClientError as error:
                say(event="error", app=self.app, server=url, message=str(error))
            await asyncio.sleep(1)

    def dispatch(self, event):
        # Every ARI event names the server it comes from. Routing by that, not by
        # the socket it came on, keeps this code right behind a proxy or a bus too.
        server = self.servers.get(event.get("asterisk_id"))
        if server is None:
            say(event="error", app=self.app, message=f"event from unknown server {event.get('asterisk_id')}")
        elif event["type"] == "CallBroadcast":
            self.spawn(self.claim(server, event))
        elif event["type"] == "StasisStart":
            self.spawn(self.handle(server, event["channel"]["id"]))

    async def claim(self, server, event):
        line = dict(event="claim", app=self.app, channel=event["channel"]["id"],
                    asterisk_id=event["asterisk_id"], server=server)
        params = {"channelId": line["channel"], "application": self.app}
        try:
            async with self.http.post(f"{server}/ari/events/claim", params=params) as response:
                # 204: ours, StasisStart follows. 409: another agent won. 404: too late.
                say(**line, result="won" if response.status == 204 else "lost", status=response.status)
        except aiohttp.ClientError as error:
            # The call lives on that server only: no other server can take this claim.
            say(**line, result="failed", message=str(error))

    async def handle(self, server, channel):
        line = dict(app=self.app, channel=channel, server=server)
        calls = f"{server}/ari/channels/{channel}"
        try:
            await self.request("POST", f"{calls}/answer")
            say(event="answered", **line)
            playback = await self.request("POST", f"{calls}/play", params={"media": MEDIA})
            say(event="playing", playback=playback["id"], **line)
            await asyncio.sleep(PLAY_SECONDS)
            # 404 is fine: a sound file shorter than PLAY_SECONDS has ended by itself.
            await self.request("DELETE", f"{server}/ari/playbacks/{playback['id']}", missing_ok=True)
            await self.request("DELETE", calls)
            say(event="hungup", **line)
        except aiohttp.ClientError as error:  # the caller hung up first, the server went away...
            say(event="error", message=str(error), **line)

    async def request(self, method, url, params=None, missing_ok=False):
        async with self.http.request(method, url, params=params) as response:
            if response.status == 404 and missing_ok:
                return None
            response.raise_for_status()
            return await response.json() if response.content_type == "application/json" else None


async def entity_id(http, url):
    try:
        async with http.get(f"{url}/ari/asterisk/info") as response:
            response.raise_for_status()
            return (await response.json())["system"]["entity_id"]
    except aiohttp.ClientError as error:
        sys.exit(f"agent: {url}: {error}")


async def main():
    parser = argparse.ArgumentParser(description="StasisBroadcast agent for several Asterisk servers")
    parser.add_argument("--app", required=True, help="ARI application name")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("urls", nargs="+", metavar="URL", help="each server's HTTP address, http://host:8088")
    args = parser.parse_args()

    async with aiohttp.ClientSession(auth=aiohttp.BasicAuth(args.user, args.password)) as http:
        servers = {}
        for url in (u.rstrip("/") for u in args.urls):
            asterisk_id = await entity_id(http, url)
            if asterisk_id in servers:  # claims could not be routed: refuse to start
                sys.exit(f"agent: {servers[asterisk_id]} and {url} share the entity id {asterisk_id}; "
                         "give each Asterisk its own (asterisk.conf [options] entityid)")
            servers[asterisk_id] = url
        say(event="servers", app=args.app, servers=servers)

        agent = Agent(http, args.app, servers)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        listeners = [asyncio.create_task(agent.listen(url)) for url in servers.values()]
        await stop.wait()
        for task in listeners + list(agent.tasks):
            task.cancel()
        await asyncio.gather(*listeners, *agent.tasks, return_exceptions=True)
    say(event="exit", app=args.app)


if __name__ == "__main__":
    asyncio.run(main())
