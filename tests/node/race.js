#!/usr/bin/env node
// ARI applications written with the `ari-client` npm package race to claim
// StasisBroadcast calls, as a user's own applications would.
//
//   node race.js URL USER PASSWORD APP...
//
// One client (one WebSocket) per application. Each application claims every
// CallBroadcast it receives with `client.events.claimChannel`. The winner
// sends the channel back to the dialplan once its StasisStart has arrived and
// every application's claim has been answered (a claim that reached Asterisk
// after the session ended would rightly get 404, not the 409 under test).
// Prints one JSON object per line on stdout:
//   {"event":"ready","app":A,"claimChannel":"function"}
//   {"event":"CallBroadcast","app":A,"channel":ID}
//   {"event":"claim","app":A,"channel":ID,"outcome":"resolved"|"rejected","status":204,"message":M}
//   {"event":"StasisStart","app":A,"channel":ID,"args":[...]}
//   {"event":"continue","app":A,"channel":ID,"outcome":"resolved"|"rejected","message":M}
//   {"event":"error","app":A,"message":M}     a client-level error (not fatal)
//   {"event":"fatal","message":M}             then exits with status 1
//   {"event":"exit","reason":R}               then exits with status 0
// Stops on SIGTERM, SIGINT or when stdin closes (so it never outlives its parent).
'use strict';

const http = require('http');
const ari = require('ari-client');

const [url, user, password, ...apps] = process.argv.slice(2);
if (!url || !user || password === undefined || apps.length === 0) {
  console.error('usage: node race.js URL USER PASSWORD APP...');
  process.exit(2);
}

function say(object) {
  process.stdout.write(JSON.stringify(object) + '\n');
}
// stdout carries only those lines: what the libraries print themselves
// (swagger-client warns that ARI's description uses Swagger 1.2) goes to stderr.
console.log = console.info = console.warn = console.error;

// Nothing may end this process silently: an exception or a rejection nobody
// handled (for example ari-client's TypeError on an event type it has no
// model for) is reported, and the process exits non-zero.
function fatal(error) {
  say({ event: 'fatal', message: String((error && error.stack) || error) });
  console.error(error);
  process.exit(1);
}
process.on('uncaughtException', fatal);
process.on('unhandledRejection', fatal);

// ari-client rejects a failed operation with an Error whose message is the
// response body: the HTTP status is lost. Record it from the wire instead,
// per claim URL (path and query name the channel and the application).
const claimStatus = new Map();
const plainRequest = http.request;
http.request = function (...args) {
  const request = plainRequest.apply(this, args);
  request.on('response', (response) => {
    if (request.path.startsWith('/ari/events/claim')) {
      claimStatus.set(request.path, response.statusCode);
    }
  });
  return request;
};
function statusOfClaim(channelId, application) {
  for (const [path, status] of claimStatus) {
    const query = new URLSearchParams(path.split('?')[1] || '');
    if (query.get('channelId') === channelId && query.get('application') === application) {
      claimStatus.delete(path);
      return status;
    }
  }
  return null;
}

const clients = [];

// Per channel: claims answered so far, and the winner's channel once its StasisStart came.
const calls = new Map();
function call(channelId) {
  if (!calls.has(channelId)) calls.set(channelId, { answered: 0, winner: null });
  return calls.get(channelId);
}
function continueWhenSettled(channelId) {
  const state = call(channelId);
  if (state.answered < apps.length || !state.winner) return;
  calls.delete(channelId);
  const { app, channel } = state.winner;
  channel.continueInDialplan().then(
    () => say({ event: 'continue', app, channel: channelId, outcome: 'resolved' }),
    (error) => say({ event: 'continue', app, channel: channelId, outcome: 'rejected', message: error.message }),
  );
}

async function run(app) {
  const client = await ari.connect(url, user, password);
  clients.push(client);

  client.on('CallBroadcast', (event) => {
    const channelId = event.channel.id;
    say({ event: 'CallBroadcast', app, channel: channelId });
    client.events.claimChannel({ channelId, application: app })
      .then(
        () => say({ event: 'claim', app, channel: channelId, outcome: 'resolved', status: statusOfClaim(channelId, app) }),
        (error) => say({
          event: 'claim', app, channel: channelId, outcome: 'rejected',
          status: statusOfClaim(channelId, app), message: error.message,
        }),
      )
      .then(() => {
        call(channelId).answered += 1;
        continueWhenSettled(channelId);
      });
  });

  client.on('StasisStart', (event, channel) => {
    say({ event: 'StasisStart', app, channel: channel.id, args: event.args });
    call(channel.id).winner = { app, channel };
    continueWhenSettled(channel.id);
  });

  for (const name of ['APILoadError', 'WebSocketReconnecting', 'WebSocketMaxRetries']) {
    client.on(name, (error) => say({ event: 'error', app, message: `${name}: ${error && error.message}` }));
  }

  await client.start(app);
  say({ event: 'ready', app, claimChannel: typeof (client.events && client.events.claimChannel) });
}

function stop(reason) {
  for (const client of clients) {
    try {
      client.stop();
    } catch (error) {
      say({ event: 'error', message: `stop: ${error.message}` });
    }
  }
  say({ event: 'exit', reason });
  process.exit(0);
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
process.stdin.on('end', () => stop('stdin closed'));
process.stdin.resume();

Promise.all(apps.map(run)).catch(fatal);
