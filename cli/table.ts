import { stripVTControlCharacters } from 'node:util';

/**
 * An aligned table for people: a header row and columns padded to their widest cell (colour
 * codes do not count). The last column is not padded, so lines carry no trailing blanks.
 */
export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((header, column) => Math.max(visibleLength(header), ...rows.map((row) => visibleLength(row[column] ?? ''))));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, column) => (column === cells.length - 1 ? cell : cell + ' '.repeat((widths[column] ?? 0) - visibleLength(cell))))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

function visibleLength(text: string): number {
  return stripVTControlCharacters(text).length;
}
