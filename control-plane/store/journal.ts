/**
 * The file store's journal format, without I/O: one line per record, `<crc32> <json>\n`, where
 * `<crc32>` is the CRC-32 of the JSON bytes as 8 lowercase hex digits. JSON.stringify never
 * writes a raw newline, so a newline always ends a record. The first line is a header naming
 * the snapshot revision the journal follows; every later line is one group commit: the
 * transactions of one durable write, in revision order.
 *
 * A crash can leave the last write incomplete (a torn record), and only the last: the store
 * appends a record only after the one before it is durable. So damage after the last good
 * record is a torn tail, dropped; damage before a good record is corruption, refused.
 */
import { crc32 } from 'node:zlib';
import type { StoreValue } from './store.js';

/** Version of the journal format, in its header. */
export const JOURNAL_FORMAT = 1;
const CRC_HEX_DIGITS = 8;
const NEWLINE = 0x0a;
const SPACE = 0x20;

/** One operation of a journaled transaction. */
export type JournalOp = { put: string; value: StoreValue; lease?: string } | { delete: string };

/** One transaction: the ops that made `revision`. */
export interface JournalTxn {
  revision: number;
  ops: JournalOp[];
}

/** One group commit. */
export interface JournalRecord {
  txns: JournalTxn[];
  /** Time to live of every lease that a put of this record names, so that a replay can restart it. */
  leases: Record<string, number>;
}

/** What a journal's bytes hold. */
export type DecodedJournal =
  | {
      ok: true;
      /** The snapshot revision the journal was started after. */
      base: number;
      records: Array<{ offset: number; record: JournalRecord }>;
      /** Length of the good part; anything after it is a torn tail. */
      validBytes: number;
    }
  | { ok: false; offset: number; reason: string };

/** The journal's first line. */
export function encodeHeader(base: number): Buffer {
  return encodeLine({ journal: JOURNAL_FORMAT, base });
}

export function encodeRecord(record: JournalRecord): Buffer {
  return encodeLine(record);
}

function encodeLine(body: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(body), 'utf8');
  const line = Buffer.allocUnsafe(CRC_HEX_DIGITS + 1 + json.length + 1);
  line.write(crc32(json).toString(16).padStart(CRC_HEX_DIGITS, '0'), 0, 'latin1');
  line[CRC_HEX_DIGITS] = SPACE;
  json.copy(line, CRC_HEX_DIGITS + 1);
  line[line.length - 1] = NEWLINE;
  return line;
}

/** Splits a journal into its header and records, telling a torn tail from corruption. */
export function decodeJournal(bytes: Buffer): DecodedJournal {
  const lines: Array<{ offset: number; end: number; body: unknown }> = [];
  let offset = 0;
  while (offset < bytes.length) {
    const newline = bytes.indexOf(NEWLINE, offset);
    // An unterminated last line is torn: a record always ends in a newline.
    if (newline === -1) break;
    lines.push({ offset, end: newline + 1, body: checkedBody(bytes.subarray(offset, newline)) });
    offset = newline + 1;
  }
  let lastGood = -1;
  for (let i = lines.length - 1; i >= 0; i--) {
    if (lines[i]!.body !== undefined) {
      lastGood = i;
      break;
    }
  }
  const header = lines[0];
  if (header === undefined || header.body === undefined) return { ok: false, offset: 0, reason: 'no journal header' };
  const base = headerBase(header.body);
  if (base === undefined) return { ok: false, offset: 0, reason: `not a journal of format ${JOURNAL_FORMAT}` };
  const records: Array<{ offset: number; record: JournalRecord }> = [];
  for (let i = 1; i <= lastGood; i++) {
    const line = lines[i]!;
    if (line.body === undefined) return { ok: false, offset: line.offset, reason: 'damaged record (checksum mismatch) before the last record' };
    const record = asRecord(line.body);
    if (record === undefined) return { ok: false, offset: line.offset, reason: 'malformed record' };
    records.push({ offset: line.offset, record });
  }
  return { ok: true, base, records, validBytes: lines[lastGood]!.end };
}

/** The parsed JSON of a line whose checksum matches, or undefined. */
function checkedBody(line: Buffer): unknown {
  if (line.length < CRC_HEX_DIGITS + 2 || line[CRC_HEX_DIGITS] !== SPACE) return undefined;
  const expected = line.toString('latin1', 0, CRC_HEX_DIGITS);
  const json = line.subarray(CRC_HEX_DIGITS + 1);
  if (!/^[0-9a-f]{8}$/.test(expected) || crc32(json) !== Number.parseInt(expected, 16)) return undefined;
  try {
    return JSON.parse(json.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

function headerBase(body: unknown): number | undefined {
  if (!isRecord(body) || body.journal !== JOURNAL_FORMAT || !isRevision(body.base)) return undefined;
  return body.base;
}

function asRecord(body: unknown): JournalRecord | undefined {
  if (!isRecord(body) || !Array.isArray(body.txns) || !isRecord(body.leases)) return undefined;
  for (const ttlMs of Object.values(body.leases)) if (typeof ttlMs !== 'number' || !(ttlMs > 0)) return undefined;
  for (const txn of body.txns as unknown[]) {
    if (!isRecord(txn) || !isRevision(txn.revision) || txn.revision === 0 || !Array.isArray(txn.ops)) return undefined;
    for (const op of txn.ops as unknown[]) {
      if (!isRecord(op)) return undefined;
      const isPut = typeof op.put === 'string' && 'value' in op && (op.lease === undefined || typeof op.lease === 'string');
      if (!isPut && typeof op.delete !== 'string') return undefined;
    }
  }
  return body as unknown as JournalRecord;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isRevision(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}
