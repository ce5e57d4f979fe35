/**
 * Protocol version 2 on the mux: TUNNEL streams between version-2 ends, version 1 kept with a
 * version-1 peer (which then cannot be asked for a tunnel), and TUNNEL on a version-1 link as a
 * link error.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { ErrorCode, FrameType, PROTOCOL_MAX_VERSION } from '../../proto/index.js';
import type { Frame, GoAwayFrame, TrellisError, TunnelFrame } from '../../proto/index.js';
import type { MuxStream } from '../../sidecar/mux/index.js';
import { MuxStreamDuplex, Session } from '../../sidecar/mux/index.js';
import { next, RawPeer, receiveAll, sendAll, sessionPair, sha256, tcpPair } from './helpers.js';

const PATH = ['a/ga', 'c/gc'];

describe('mux tunnels (protocol version 2)', () => {
  it('carries a TUNNEL stream with its path, hop and target, byte-exact both ways', async () => {
    let accepted: ((value: [MuxStream, TunnelFrame]) => void) | undefined;
    const tunnel = new Promise<[MuxStream, TunnelFrame]>((resolve) => (accepted = resolve));
    const { dialer, acceptor } = sessionPair(await tcpPair(), {}, { onTunnel: (stream, frame) => accepted?.([stream, frame]) });
    await dialer.whenReady();
    assert.equal(dialer.version, PROTOCOL_MAX_VERSION);
    const opened = dialer.openTunnel(PATH, 1, 'sc-0123456789ab');
    const [stream, frame] = await tunnel;
    assert.deepEqual({ path: frame.path, hop: frame.hop, target: frame.target }, { path: PATH, hop: 1, target: 'sc-0123456789ab' });
    const up = randomBytes(3 * 1024 * 1024);
    const down = randomBytes(1024 * 1024);
    const [receivedUp, receivedDown] = await Promise.all([receiveAll(stream), receiveAll(opened), sendAll(opened, up), sendAll(stream, down)]);
    assert.equal(receivedUp.sha256, sha256(up));
    assert.equal(receivedDown.sha256, sha256(down));
    dialer.close();
    acceptor.close();
  });

  it('refuses a TUNNEL with ROUTE_REFUSED where no tunnel handler is set', async () => {
    const { dialer, acceptor } = sessionPair(await tcpPair());
    await dialer.whenReady();
    const stream = dialer.openTunnel(PATH, 0, 'sc-0123456789ab');
    const [code] = await next<[number, string, boolean]>(stream, 'reset');
    assert.equal(code, ErrorCode.ROUTE_REFUSED);
    dialer.close();
    acceptor.close();
  });

  it('speaks version 1 with a version-1 peer, which cannot be asked for a tunnel', async () => {
    const { dialer, acceptor } = sessionPair(await tcpPair(), {}, { maxVersion: 1, onStream: (stream) => stream.end() });
    await dialer.whenReady();
    assert.equal(dialer.version, 1);
    assert.throws(() => dialer.openTunnel(PATH, 0, 'sc-0123456789ab'), { code: 'TRELLIS_ERR_TUNNEL_UNSUPPORTED' });
    // Ordinary streams still work between the two versions.
    const stream = dialer.openStream('svc');
    await next(stream, 'end');
    dialer.close();
    acceptor.close();
  });

  it('closes a version-1 link that carries a TUNNEL with PROTOCOL_ERROR', async () => {
    const sockets = await tcpPair();
    const session = new Session(sockets.server, { role: 'acceptor', maxVersion: 1, onTunnel: () => assert.fail('no tunnel on a version-1 link') });
    const closed = next<[TrellisError | undefined]>(session, 'close').then(([error]) => error);
    const peer = new RawPeer(sockets.client);
    const frames: Frame[] = [
      { type: FrameType.HELLO, minVersion: 1, maxVersion: 2, initialWindowBytes: 65536 },
      { type: FrameType.TUNNEL, streamId: 1, path: PATH, hop: 0, target: 'sc-0123456789ab' },
    ];
    peer.send(...frames);
    const goAway = (await peer.waitFor((frame) => frame.type === FrameType.GOAWAY)) as GoAwayFrame;
    assert.equal(goAway.code, ErrorCode.PROTOCOL_ERROR);
    assert.equal((await closed)?.code, 'TRELLIS_ERR_UNEXPECTED_FRAME');
  });

  it('turns a reset of a stream carried as a Duplex into TRELLIS_ERR_STREAM_RESET with its wire code', async () => {
    let accepted: ((stream: MuxStream) => void) | undefined;
    const tunnel = new Promise<MuxStream>((resolve) => (accepted = resolve));
    const { dialer, acceptor } = sessionPair(await tcpPair(), {}, { onTunnel: (stream) => accepted?.(stream) });
    await dialer.whenReady();
    const duplex = new MuxStreamDuplex(dialer.openTunnel(PATH, 0, 'sc-0123456789ab'));
    duplex.write('hello');
    const far = await tunnel;
    const failed = next<[Error & { code?: string; wireCode?: number }]>(duplex, 'error');
    far.reset(ErrorCode.NO_ROUTE, 'next hop unreachable');
    const [error] = await failed;
    assert.equal(error.code, 'TRELLIS_ERR_STREAM_RESET');
    assert.equal(error.wireCode, ErrorCode.NO_ROUTE);
    dialer.close();
    acceptor.close();
  });
});
