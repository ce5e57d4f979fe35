// Searches a live process's memory for a byte string: every readable mapping of /proc/PID/maps,
// read from /proc/PID/mem in chunks (root may read any process's memory), with a bound on the
// total read so a huge address space cannot stall a test.
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';

export interface ScanResult {
  /** Whether `needle` was found. */
  readonly found: boolean;
  /** Bytes read before it was found or the scan ended. */
  readonly bytesScanned: number;
  /** Readable mappings that could not be read (EIO…) and were skipped. */
  readonly unreadable: number;
  /** The scan stopped at the bound before reading everything. */
  readonly truncated: boolean;
}

const CHUNK_BYTES = 4 * 1024 * 1024;
/** @default 2 GiB */
const DEFAULT_MAX_BYTES = 2 * 1024 * 1024 * 1024;

interface Mapping {
  start: number;
  end: number;
  name: string;
}

/** The readable mappings of `pid`, without the kernel's special ones and read-only files (code and data of binaries and libraries). */
function readableMappings(pid: number): Mapping[] {
  const mappings: Mapping[] = [];
  for (const line of readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
    const match = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (match === null) continue;
    const [, start = '', end = '', perms = '', name = ''] = match;
    if (!perms.startsWith('r')) continue;
    if (name === '[vvar]' || name === '[vsyscall]' || name === '[vdso]' || name.startsWith('[vvar')) continue;
    // Files mapped without write access are the program's and libraries' own bytes, never traffic.
    if (name.startsWith('/') && perms[1] !== 'w') continue;
    mappings.push({ start: parseInt(start, 16), end: parseInt(end, 16), name });
  }
  return mappings;
}

/** Searches the memory of `pid` for `needle`. */
export function scanProcessMemory(pid: number, needle: Buffer, maxBytes = DEFAULT_MAX_BYTES): ScanResult {
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  const buffer = Buffer.alloc(CHUNK_BYTES + needle.length);
  let bytesScanned = 0;
  let unreadable = 0;
  try {
    for (const mapping of readableMappings(pid)) {
      // The last needle.length - 1 bytes of the previous chunk, so a match across chunks is seen.
      let carried = 0;
      for (let at = mapping.start; at < mapping.end; ) {
        if (bytesScanned >= maxBytes) return { found: false, bytesScanned, unreadable, truncated: true };
        const length = Math.min(CHUNK_BYTES, mapping.end - at);
        let read: number;
        try {
          read = readSync(fd, buffer, carried, length, at);
        } catch {
          unreadable += 1;
          break;
        }
        if (read <= 0) break;
        bytesScanned += read;
        const view = buffer.subarray(0, carried + read);
        if (view.indexOf(needle) !== -1) return { found: true, bytesScanned, unreadable, truncated: false };
        carried = Math.min(needle.length - 1, view.length);
        view.copy(buffer, 0, view.length - carried);
        at += read;
      }
    }
  } finally {
    closeSync(fd);
  }
  return { found: false, bytesScanned, unreadable, truncated: false };
}
