// A sample front end for the demo: each request calls the `api` service through the mesh,
// over the local upstream port its sidecar gives it (TRELLIS_UPSTREAM_API), with no TLS and
// no mesh code of its own.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

const upstream = process.env['TRELLIS_UPSTREAM_API'];
if (upstream === undefined) {
  process.stderr.write('web-app: TRELLIS_UPSTREAM_API is not set\n');
  process.exit(2);
}

const server = http.createServer((_req, res) => {
  // A new connection per call: each lands on the ring by its own source port.
  const call = http.get(`http://${upstream}/`, { agent: false }, (apiRes) => {
    let body = '';
    apiRes.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    apiRes.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ web: 'ok', api: JSON.parse(body) as unknown }));
    });
  });
  call.on('error', (error) => {
    res.writeHead(502, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ web: 'error', error: error.message }));
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening on 127.0.0.1:${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
