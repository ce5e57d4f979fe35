// A sample service for the demo: answers every HTTP request with its own instance name.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

const name = process.argv[2] ?? 'api';
let served = 0;
const server = http.createServer((req, res) => {
  served += 1;
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ instance: name, served, path: req.url }));
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening on 127.0.0.1:${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
