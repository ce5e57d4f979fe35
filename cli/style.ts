import { styleText } from 'node:util';

type Style = Parameters<typeof styleText>[0];

/** Colours for one output stream: on a terminal only, and never when NO_COLOR is set (no-color.org). */
export interface Styler {
  readonly enabled: boolean;
  style(format: Style, text: string): string;
}

export function stylerFor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): Styler {
  const noColor = env['NO_COLOR'];
  const enabled = stream.isTTY === true && (noColor === undefined || noColor === '');
  // The gate is ours (the stream given, NO_COLOR): styleText's own looks at stdout and TERM.
  return { enabled, style: (format, text) => (enabled ? styleText(format, text, { validateStream: false }) : text) };
}
