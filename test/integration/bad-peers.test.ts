// Peers that break the protocol on a real link: disconnected with an error code, and counted.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { ErrorCode, FrameType, Limits } from '../../proto/index.js';
import { parseJoinToken } from '../../proto/tokens.js';
import type { CredentialsInit } from '../../sidecar/identity/credentials.js';
import { joinMesh } from '../../sidecar/join.js';
import { RawPeer } from '../mux/helpers.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, removeDirs, scrapeMetric, startControlPlane, startSidecar } from '../support/mesh.js';

describe('bad peers on a link', () => {
  let cp: ControlPlaneProcess;
  let stalledApp: net.Server;
  let sidecar: SidecarProcess;
  let intruder: CredentialsInit;

  before(async () => {
    cp = await startControlPlane();
    // An app that accepts and never reads: the stream's credit is never given back.
    stalledApp = net.createServer((socket) => socket.pause());
    stalledApp.listen(0, '127.0.0.1');
    await once(stalledApp, 'listening');
    const app = `127.0.0.1:${(stalledApp.address() as net.AddressInfo).port}`;
    sidecar = await startSidecar({ service: 'stalled', token: await createToken(cp, 'stalled'), cp, app });
    const token = await createToken(cp, 'intruder');
    // A genuine mesh identity: the misbehaviour is in the frames, not the certificate.
    intruder = await joinMesh([cp.url], parseJoinToken(token), token, 'intruder');
  });

  after(async () => {
    await sidecar?.proc.stop();
    await cp?.proc.stop();
    stalledApp?.close();
    await removeDirs(cp?.dataDir ?? '');
  });

  async function rawLink(): Promise<RawPeer> {
    const [host, port] = sidecar.linkAddress.split(':');
    const socket = tls.connect({
      host,
      port: Number(port),
      key: intruder.privateKeyPem,
      cert: intruder.certPem,
      ca: intruder.caPems,
      checkServerIdentity: () => undefined,
    });
    await once(socket, 'secureConnect');
    const peer = new RawPeer(socket);
    peer.send({ type: FrameType.HELLO, minVersion: 1, maxVersion: 1, initialWindowBytes: 256 * 1024 });
    return peer;
  }

  it('disconnects a peer that declares an oversized frame, with FRAME_TOO_LARGE, and counts it', async () => {
    const peer = await rawLink();
    // A DATA header declaring one byte more than the limit; no payload needs to follow.
    const header = Buffer.from([0x93, 0x05, 0x01, 0xce, 0, 0, 0, 0]);
    header.writeUInt32BE(Limits.MAX_DATA_PAYLOAD_BYTES + 1, 4);
    const prefix = Buffer.alloc(2);
    prefix.writeUInt16BE(header.length);
    peer.socket.write(Buffer.concat([prefix, header]));
    const goAway = await peer.waitFor((frame) => frame.type === FrameType.GOAWAY);
    assert.equal(goAway.type === FrameType.GOAWAY && goAway.code, ErrorCode.FRAME_TOO_LARGE);
    await peer.closed;
    assert.equal(await scrapeMetric(sidecar, 'trellis_sidecar_protocol_violations_total', { code: 'TRELLIS_ERR_FRAME_TOO_LARGE' }), 1);
  });

  it('disconnects a peer that sends more than its credit, with FLOW_CONTROL_ERROR, and counts it', async () => {
    const peer = await rawLink();
    peer.send({ type: FrameType.OPEN, streamId: 1, service: 'stalled' });
    const chunk = Buffer.alloc(64 * 1024, 7);
    // The app never reads, but the kernel's socket buffers take a few MiB before the sidecar
    // stops returning credit; 64 MiB sent without waiting for WINDOW is over the credit
    // whatever those buffers hold.
    for (let i = 0; i < 1024; i += 1) peer.send({ type: FrameType.DATA, streamId: 1, payload: chunk });
    const goAway = await peer.waitFor((frame) => frame.type === FrameType.GOAWAY);
    assert.equal(goAway.type === FrameType.GOAWAY && goAway.code, ErrorCode.FLOW_CONTROL_ERROR);
    await peer.closed;
    assert.equal(await scrapeMetric(sidecar, 'trellis_sidecar_protocol_violations_total', { code: 'TRELLIS_ERR_FLOW_CONTROL' }), 1);
  });
});
