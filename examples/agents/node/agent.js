#!/usr/bin/env node
// A StasisBroadcast agent written with the ari-client npm package: one ARI
// application connected to several Asterisk servers, claiming each offered
// call on the server that holds it.
//
//   node agent.js --app sales --user ari --password secret http://pbx1:8088 http://pbx2:8088
//
// Each call it wins is answered, hears a short tone and is hung up: a real
// agent does its work there. It prints one JSON object per line (what it did,
// and on which server) and stops cleanly on SIGTERM or Ctrl-C.
'use strict';

const { parseArgs } = require('util');
const ari = require('ari-client');

const MEDIA = 'tone:ring'; // needs no sound files; any ARI media URI works
const PLAY_MS = 500; // a tone plays until stopped, so it is stopped after this

const { values: opts, positionals: urls } = parseArgs({
  options: { app: { type: 'string' }, user: { type: 'string' }, password: { type: 'string' } },
  allowPositionals: true,
});
if (!opts.app || !opts.user || opts.password === undefined || urls.length === 0) {
  console.error('usage: node agent.js --app NAME --user USER --password PASSWORD URL...');
  process.exit(2);
}

const say = (fields) => process.stdout.write(JSON.stringify(fields) + '\n');
// stdout is for those lines only: swagger-client logs a Swagger 1.2 warning.
console.log = console.info = console.warn = console.error;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const servers = new Map(); // asterisk_id -> { url, client }, learnt at start

async function connect(url) {
  const client = await ari.connect(url, opts.user, opts.password);
  const id = (await client.asterisk.getInfo()).system.entity_id;
  if (servers.has(id)) { // claims could not be routed: refuse to start
    throw new Error(`${servers.get(id).url} and ${url} share the entity id ${id}; ` +
      'give each Asterisk its own (asterisk.conf [options] entityid)');
  }
  servers.set(id, { url, client });
  client.on('CallBroadcast', (event) => claim(event));
  client.on('StasisStart', (event) => handle(event));
  client.on('WebSocketReconnecting', () => say({ event: 'disconnected', app: opts.app, server: url }));
}

// Every ARI event names the server it comes from. Routing by that, not by the
// client it came on, keeps this code right behind a proxy or a bus too.
function home(event) {
  const server = servers.get(event.asterisk_id);
  if (!server) say({ event: 'error', app: opts.app, message: `event from unknown server ${event.asterisk_id}` });
  return server;
}

async function claim(event) {
  const server = home(event);
  if (!server) return;
  const channelId = event.channel.id;
  const line = { event: 'claim', app: opts.app, channel: channelId, asterisk_id: event.asterisk_id, server: server.url };
  try {
    await server.client.events.claimChannel({ channelId, application: opts.app });
    say({ ...line, result: 'won' }); // 204: StasisStart follows
  } catch (error) {
    // ari-client passes on the body: another agent won (409), too late (404),
    // or the server is unreachable, and then no other server can take the claim.
    say({ ...line, result: 'lost', message: error.message });
  }
}

async function handle(event) {
  const server = home(event);
  if (!server) return;
  const channelId = event.channel.id;
  const line = { app: opts.app, channel: channelId, server: server.url };
  const { channels, playbacks } = server.client;
  try {
    await channels.answer({ channelId });
    say({ event: 'answered', ...line });
    const playback = await channels.play({ channelId, media: MEDIA });
    say({ event: 'playing', playback: playback.id, ...line });
    await sleep(PLAY_MS);
    // Fails harmlessly when a sound file shorter than PLAY_MS has ended by itself.
    await playbacks.stop({ playbackId: playback.id }).catch(() => {});
    await channels.hangup({ channelId });
    say({ event: 'hungup', ...line });
  } catch (error) { // the caller hung up first, the server went away...
    say({ event: 'error', message: error.message, ...line });
  }
}

function stop(reason) {
  for (const { client } of servers.values()) client.stop();
  say({ event: 'exit', app: opts.app, reason });
  process.exit(0);
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

async function main() {
  await Promise.all(urls.map((url) => connect(url.replace(/\/+$/, ''))));
  say({ event: 'servers', app: opts.app, servers: Object.fromEntries([...servers].map(([id, s]) => [id, s.url])) });
  await Promise.all([...servers.values()].map(async ({ url, client }) => {
    await client.start(opts.app);
    say({ event: 'connected', app: opts.app, server: url });
  }));
}
main().catch((error) => {
  console.error(`agent: ${error.message}`);
  process.exit(1);
});
