// The browser participant of the e2e suite. The test calls these functions with
// Runtime.evaluate (e2e/tests/browser.py); every one returns plain JSON.
//
// Times are epoch milliseconds (performance.timeOrigin + performance.now()), so the test can
// compare them with Python's time.time() on the same machine.
'use strict';

const LK = window.LivekitClient;
LK.setLogLevel('info');
const POLL_MS = 10;

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const state = {
  room: null,
  events: [], // {at, event, detail}: the room's connection events
  meter: null,
};

function record(event, detail) {
  state.events.push({ at: now(), event, detail: detail === undefined ? null : String(detail) });
  console.log(`e2e: room event ${event}${detail === undefined ? '' : ` ${detail}`}`);
}

// What the browser hears of one subscribed audio track, from its receiver's `inbound-rtp` stats.
// Fresh samples = totalSamplesReceived - concealedSamples (libwebrtc conceals lost audio, and
// concealment counts as received); a gap in fresh audio is the longest time the fresh count did
// not grow. Chromium caches a peer connection's stats for 50 ms, so a new snapshot appears every
// 50 ms at best: each is timed by its own `timestamp` (the page's clock, measured), and polling
// every POLL_MS picks it up within POLL_MS. The longest time between two snapshots is the
// resolution of the gaps (`worstSnapshot`): a stalled timer shows there, and only makes the
// gaps longer, never hides one.
class Meter {
  constructor(track) {
    this.track = track;
    this.polls = 0;
    this.snapshots = 0;
    this.lastSnapshotAt = null;
    this.worstSnapshot = 0;
    this.fresh = 0;
    this.concealed = 0;
    this.total = 0;
    this.energy = 0;
    this.firstFreshAt = null;
    this.lastFreshAt = null;
    this.worstGap = 0;
    this.windowStart = null;
    this.windowEnergy = 0;
    this.errors = 0;
    this.running = true;
    this.loop();
  }

  async loop() {
    while (this.running) {
      try {
        await this.poll();
      } catch (e) {
        this.errors += 1;
        console.error(`e2e: getStats failed: ${e}`);
      }
      await sleep(POLL_MS);
    }
  }

  async poll() {
    const receiver = this.track.receiver;
    if (!receiver) return;
    const report = await receiver.getStats();
    this.polls += 1;
    report.forEach((s) => {
      if (s.type !== 'inbound-rtp' || s.kind !== 'audio') return;
      const t = s.timestamp;
      if (this.lastSnapshotAt !== null && t <= this.lastSnapshotAt) return; // the cached snapshot
      if (this.lastSnapshotAt !== null && this.windowStart !== null) {
        this.worstSnapshot = Math.max(this.worstSnapshot, t - this.lastSnapshotAt);
      }
      this.lastSnapshotAt = t;
      this.snapshots += 1;
      const fresh = (s.totalSamplesReceived || 0) - (s.concealedSamples || 0);
      if (fresh > this.fresh) {
        if (this.firstFreshAt === null) this.firstFreshAt = t;
        if (this.lastFreshAt !== null && this.windowStart !== null) {
          this.worstGap = Math.max(this.worstGap, t - this.lastFreshAt);
        }
        this.lastFreshAt = t;
      }
      this.fresh = fresh;
      this.concealed = s.concealedSamples || 0;
      this.total = s.totalSamplesReceived || 0;
      this.energy = s.totalAudioEnergy || 0;
    });
  }

  measureFromNow() {
    this.windowStart = now();
    this.windowEnergy = this.energy;
    this.worstGap = 0;
    this.worstSnapshot = 0;
  }

  summary() {
    const t = now();
    return {
      at: t,
      polls: this.polls,
      snapshots: this.snapshots,
      errors: this.errors,
      fresh: this.fresh,
      concealed: this.concealed,
      total: this.total,
      energy: this.energy,
      firstFreshAt: this.firstFreshAt,
      lastFreshAt: this.lastFreshAt,
      // A gap still open now counts too: audio that never came back is the worst gap.
      openGap: this.lastFreshAt === null ? null : t - this.lastFreshAt,
      worstGap: this.worstGap,
      worstSnapshot: this.worstSnapshot,
      windowStart: this.windowStart,
      windowEnergy: this.windowStart === null ? null : this.energy - this.windowEnergy,
    };
  }
}

// Join `url` with `token` and publish the (fake) microphone.
async function join(url, token) {
  const startedAt = now();
  const room = new LK.Room({ adaptiveStream: false, dynacast: false });
  state.room = room;
  room
    .on(LK.RoomEvent.Reconnecting, () => record('reconnecting'))
    .on(LK.RoomEvent.SignalReconnecting, () => record('signalReconnecting'))
    .on(LK.RoomEvent.Reconnected, () => record('reconnected'))
    .on(LK.RoomEvent.Disconnected, (reason) =>
      record('disconnected', reason === undefined ? 'unknown' : LK.DisconnectReason[reason] || reason))
    .on(LK.RoomEvent.TrackSubscribed, (track, _publication, participant) => {
      if (track.kind !== LK.Track.Kind.Audio) return;
      // Chromium decodes remote audio only while an element plays it, and it measures
      // totalAudioEnergy after the element's volume: a muted element reports silence. Headless
      // with no sound card, Chromium plays into a fake output.
      const element = track.attach();
      element.muted = false;
      element.volume = 1;
      document.getElementById('audio').appendChild(element);
      if (state.meter) state.meter.running = false;
      state.meter = new Meter(track);
      console.log(`e2e: subscribed to ${participant.identity}'s audio ${track.sid}`);
    });
  // No ICE servers: livekit-server hands out public STUN servers by default, and nothing here
  // may reach the internet (the node's loopback candidates are all a call on one host needs).
  await room.connect(url, token, { autoSubscribe: true, rtcConfig: { iceServers: [] } });
  const connectedAt = now();
  const mic = await LK.createLocalAudioTrack({
    // The tone must reach the other side as it was captured.
    echoCancellation: false,
    noiseSuppression: false,
    autoGainControl: false,
  });
  await room.localParticipant.publishTrack(mic, { source: LK.Track.Source.Microphone, dtx: false });
  const publishedAt = now();
  return {
    startedAt,
    connectedAt,
    publishedAt,
    identity: room.localParticipant.identity,
    room: room.name,
    serverVersion: room.serverInfo ? room.serverInfo.version : null,
    sdkVersion: LK.version,
  };
}

function measureFromNow() {
  if (!state.meter) throw new Error('no remote audio track subscribed yet');
  state.meter.measureFromNow();
  return state.meter.summary();
}

function report() {
  return {
    state: state.room ? state.room.state : null,
    events: state.events,
    rx: state.meter ? state.meter.summary() : null,
  };
}

async function leave() {
  if (state.meter) state.meter.running = false;
  if (state.room) await state.room.disconnect();
  return report();
}

window.e2e = { join, measureFromNow, report, leave };
document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('version').textContent = LK.version;
});
