/**
 * `--config FILE.yaml`: a file of flag values, the same names as the flags (`listen: …`,
 * `control-plane: […]`), validated with zod before anything starts; an error names the file,
 * the line and the field. Flags given on the command line override the file's (a repeatable
 * flag given there replaces the file's list).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { ParseArgsConfig } from 'node:util';
import type * as Yaml from 'yaml';
import { z } from 'zod';
import { ValidationError } from '../proto/errors.js';
import { closest } from './args.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * The YAML parser, loaded only when a command is given `--config`: 70-odd modules that a
 * sidecar started from flags would otherwise keep in its heap for its whole life. `require`
 * rather than `import()` keeps flag parsing synchronous; `yaml` ships CommonJS for Node.
 */
function loadYaml(): typeof Yaml {
  return createRequire(import.meta.url)('yaml') as typeof Yaml;
}

/** A config file that cannot be read or holds a wrong value: a usage mistake, exit 2. */
export class ConfigFileError extends ValidationError {
  constructor(message: string) {
    super(message, 'TRELLIS_ERR_CONFIG_FILE');
  }
}

/**
 * Field schemas of one command's config file, by flag name, where a plain string is not enough.
 * A schema for a key that is not a flag (`upstreams`) needs a `toArgs` that makes flags of it.
 */
export interface ConfigFileSpec {
  fields: Record<string, z.ZodType>;
  toArgs?: Record<string, (value: unknown) => string[]>;
}

/** The largest config file read: far beyond any real one. */
const MAX_CONFIG_FILE_BYTES = 1024 * 1024;

/** `args` with `--config FILE` replaced by the file's values, placed before the command line's. */
export function expandConfigFile(args: string[], options: Options, spec: ConfigFileSpec): string[] {
  const end = args.indexOf('--');
  const flags = end === -1 ? args : args.slice(0, end);
  const at = flags.findIndex((arg) => arg === '--config' || arg.startsWith('--config='));
  if (at === -1) return args;
  const arg = flags[at] as string;
  const path = arg === '--config' ? flags[at + 1] : arg.slice('--config='.length);
  if (path === undefined || path === '' || path.startsWith('--')) throw new ConfigFileError('--config needs a FILE');
  const rest = [...flags.slice(0, at), ...flags.slice(at + (arg === '--config' ? 2 : 1)), ...(end === -1 ? [] : args.slice(end))];
  if (rest.some((a) => a === '--config' || a.startsWith('--config='))) throw new ConfigFileError('--config is given twice');
  const fromFile = configFileArgs(path, options, spec);
  // A repeatable flag on the command line replaces the file's values, as a single one does.
  const repeatedOnCommandLine = new Set(
    Object.entries(options)
      .filter(([name, option]) => option.multiple === true && rest.some((a) => a === `--${name}` || a.startsWith(`--${name}=`)))
      .map(([name]) => name),
  );
  const kept: string[] = [];
  for (let i = 0; i < fromFile.length; i += 1) {
    const name = (fromFile[i] as string).slice(2);
    const takesValue = options[name]?.type === 'string';
    if (!repeatedOnCommandLine.has(name)) kept.push(...fromFile.slice(i, i + (takesValue ? 2 : 1)));
    if (takesValue) i += 1;
  }
  return [...kept, ...rest];
}

function configFileArgs(path: string, options: Options, spec: ConfigFileSpec): string[] {
  const file = path;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigFileError(`--config ${path}: cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  if (Buffer.byteLength(text) > MAX_CONFIG_FILE_BYTES) throw new ConfigFileError(`${file}: larger than ${MAX_CONFIG_FILE_BYTES} bytes`);
  const { LineCounter, parseDocument } = loadYaml();
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true });
  const syntaxError = doc.errors[0];
  if (syntaxError !== undefined) {
    const line = syntaxError.linePos?.[0].line ?? 1;
    const message = (syntaxError.message.split('\n')[0] ?? 'not valid YAML').replace(/ at line \d+, column \d+:?$/, '');
    throw new ConfigFileError(`${file}:${line}: ${message}`);
  }
  const value: unknown = doc.toJS() ?? {};
  const schema = schemaFor(options, spec);
  const result = schema.safeParse(value);
  if (!result.success) {
    // An unknown key first: a misspelt one also makes its field look missing.
    const issue = (result.error.issues.find((i) => i.code === 'unrecognized_keys') ?? result.error.issues[0]) as z.core.$ZodIssue;
    let path = issue.path.filter((key): key is string | number => typeof key !== 'symbol');
    let message = issue.message;
    if (issue.code === 'unrecognized_keys') {
      const key = issue.keys[0] ?? '';
      path = [...path, key];
      const suggestion = closest(key, Object.keys(schema.shape));
      message = `not a setting of this command${suggestion === undefined ? '' : ` (did you mean ${suggestion}?)`}`;
    }
    const node = doc.getIn(path, true) as { range?: [number, number, number] } | undefined;
    const parent = path.length > 0 ? (doc.getIn(path.slice(0, -1), true) as { range?: [number, number, number]; items?: { key?: { value?: unknown; range?: [number, number, number] } }[] } | undefined) : undefined;
    const keyNode = parent?.items?.find((item) => item.key?.value === path.at(-1))?.key;
    if (node === undefined && keyNode === undefined && issue.code !== 'unrecognized_keys') message = 'missing';
    const offset = keyNode?.range?.[0] ?? node?.range?.[0] ?? parent?.range?.[0] ?? 0;
    throw new ConfigFileError(`${file}:${lineCounter.linePos(offset).line}: ${formatPath(path)}: ${message}`);
  }
  const args: string[] = [];
  for (const [key, fieldValue] of Object.entries(result.data as Record<string, unknown>)) {
    const toArgs = spec.toArgs?.[key];
    if (toArgs !== undefined) args.push(...toArgs(fieldValue));
    else if (fieldValue === true) args.push(`--${key}`);
    else if (fieldValue === false || fieldValue === undefined) continue;
    else for (const item of Array.isArray(fieldValue) ? fieldValue : [fieldValue]) args.push(`--${key}`, String(item));
  }
  return args;
}

/** `upstreams[1].address` */
function formatPath(path: (string | number)[]): string {
  return path.map((key, i) => (typeof key === 'number' ? `[${key}]` : i === 0 ? key : `.${key}`)).join('') || '(top level)';
}

/** A string, or a number written without quotes (`weight: 3`). */
export const configText = z.union([z.string(), z.number()], 'expected a string').transform(String);

/** Checks a value with one of the flag parsers; the issue says what was expected. */
export function checkedText(parse: (text: string) => unknown, expected: string): z.ZodType<string> {
  return configText.superRefine((text, ctx) => {
    try {
      parse(text);
    } catch {
      ctx.addIssue({ code: 'custom', message: `expected ${expected}, got ${JSON.stringify(text)}` });
    }
  });
}

function oneOrMany(item: z.ZodType): z.ZodType {
  return z.union([item, z.array(item)]);
}

/** Every flag of the command (but --help), with the spec's own schemas where it has them. */
function schemaFor(options: Options, spec: ConfigFileSpec) {
  const shape: Record<string, z.ZodType> = {};
  for (const [name, option] of Object.entries(options)) {
    if (name === 'help') continue;
    const own = spec.fields[name];
    const base = own ?? (option.type === 'boolean' ? z.boolean('expected true or false') : configText);
    shape[name] = (option.multiple === true ? oneOrMany(base) : base).optional();
  }
  for (const [name, schema] of Object.entries(spec.fields)) if (!(name in shape)) shape[name] = schema.optional();
  return z.strictObject(shape);
}
