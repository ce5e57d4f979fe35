// The soak's plot: one panel per series, one line per process, drawn as SVG and rendered to PNG
// with resvg (no browser, no native toolchain: the renderer ships prebuilt in its package).
import { Resvg } from '@resvg/resvg-js';
import type { Sample, SeriesName } from './sampler.js';
import { SERIES, SERIES_LABELS } from './sampler.js';

const PANEL_WIDTH = 560;
const PANEL_HEIGHT = 220;
const MARGIN = { left: 60, right: 16, top: 28, bottom: 34 };
const COLUMNS = 2;
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

function escapeXml(text: string): string {
  return text.replace(/[<>&"]/g, (char) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[char] ?? char);
}

/** A round step for about `ticks` axis ticks over `span`. */
function tickStep(span: number, ticks: number): number {
  const raw = span / ticks;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  return ([1, 2, 5, 10].map((m) => m * magnitude).find((step) => step >= raw) ?? 10 * magnitude);
}

function panel(series: SeriesName, byRole: ReadonlyMap<string, readonly Sample[]>, colorOf: (role: string) => string, x0: number, y0: number, maxMinutes: number): string {
  const width = PANEL_WIDTH - MARGIN.left - MARGIN.right;
  const height = PANEL_HEIGHT - MARGIN.top - MARGIN.bottom;
  const values = [...byRole.values()].flatMap((samples) => samples.map((sample) => sample.values[series])).filter((value): value is number => value !== undefined);
  const top = Math.max(1, ...values) * 1.1;
  const step = tickStep(top, 4);
  const xStep = tickStep(Math.max(maxMinutes, 0.1), 6);
  const sx = (minutes: number): number => x0 + MARGIN.left + (minutes / Math.max(maxMinutes, 0.1)) * width;
  const sy = (value: number): number => y0 + MARGIN.top + height - (value / top) * height;
  const parts: string[] = [];
  parts.push(`<text x="${x0 + MARGIN.left}" y="${y0 + 18}" font-size="14" font-weight="bold">${escapeXml(SERIES_LABELS[series])}</text>`);
  for (let value = 0; value <= top; value += step) {
    parts.push(`<line x1="${sx(0)}" x2="${sx(maxMinutes)}" y1="${sy(value)}" y2="${sy(value)}" stroke="#e0e0e0"/>`);
    parts.push(`<text x="${x0 + MARGIN.left - 6}" y="${sy(value) + 4}" font-size="11" text-anchor="end">${Number(value.toPrecision(6))}</text>`);
  }
  for (let minutes = 0; minutes <= maxMinutes + 1e-9; minutes += xStep) {
    parts.push(`<text x="${sx(minutes)}" y="${y0 + PANEL_HEIGHT - 16}" font-size="11" text-anchor="middle">${Number(minutes.toPrecision(6))}</text>`);
  }
  parts.push(`<text x="${x0 + MARGIN.left + width / 2}" y="${y0 + PANEL_HEIGHT - 2}" font-size="11" text-anchor="middle">minutes</text>`);
  parts.push(`<rect x="${sx(0)}" y="${y0 + MARGIN.top}" width="${width}" height="${height}" fill="none" stroke="#888"/>`);
  for (const [role, samples] of byRole) {
    // A restart starts a new line: the new process's figures do not continue the old one's.
    const segments: Sample[][] = [];
    for (const sample of samples) {
      if (sample.values[series] === undefined) continue;
      const last = segments.at(-1);
      if (last === undefined || last.at(-1)?.pid !== sample.pid) segments.push([sample]);
      else last.push(sample);
    }
    for (const segment of segments) {
      const points = segment.map((sample) => `${sx(sample.minutes).toFixed(1)},${sy(sample.values[series] ?? 0).toFixed(1)}`).join(' ');
      parts.push(`<polyline points="${points}" fill="none" stroke="${colorOf(role)}" stroke-width="1.6"/>`);
    }
  }
  return parts.join('\n');
}

/** The SVG of every series for every role. */
export function soakSvg(samples: readonly Sample[], title: string): string {
  const byRole = new Map<string, Sample[]>();
  for (const sample of samples) byRole.set(sample.role, [...(byRole.get(sample.role) ?? []), sample]);
  const roles = [...byRole.keys()];
  const colorOf = (role: string): string => COLORS[roles.indexOf(role) % COLORS.length] ?? '#000';
  const maxMinutes = Math.max(0, ...samples.map((sample) => sample.minutes));
  const rows = Math.ceil((SERIES.length + 1) / COLUMNS);
  const width = PANEL_WIDTH * COLUMNS;
  const height = 40 + rows * PANEL_HEIGHT;
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, sans-serif">`, `<rect width="${width}" height="${height}" fill="white"/>`];
  parts.push(`<text x="16" y="26" font-size="16" font-weight="bold">${escapeXml(title)}</text>`);
  SERIES.forEach((series, index) => {
    parts.push(panel(series, byRole, colorOf, (index % COLUMNS) * PANEL_WIDTH, 40 + Math.floor(index / COLUMNS) * PANEL_HEIGHT, maxMinutes));
  });
  // The legend takes the last cell.
  const legendIndex = SERIES.length;
  const lx = (legendIndex % COLUMNS) * PANEL_WIDTH + MARGIN.left;
  const ly = 40 + Math.floor(legendIndex / COLUMNS) * PANEL_HEIGHT + MARGIN.top;
  roles.forEach((role, index) => {
    parts.push(`<line x1="${lx}" x2="${lx + 28}" y1="${ly + index * 20}" y2="${ly + index * 20}" stroke="${colorOf(role)}" stroke-width="3"/>`);
    parts.push(`<text x="${lx + 36}" y="${ly + index * 20 + 4}" font-size="12">${escapeXml(role)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

export function renderPng(svg: string): Buffer {
  return new Resvg(svg, { font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' }, background: 'white' }).render().asPng();
}
