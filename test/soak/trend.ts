// Does a series trend upward beyond its noise? A least-squares line through the floor of the
// series after a warm-up (the lowest sample of each window: a garbage-collected heap saws up and
// down, and a leak shows as a rising floor), its slope and the slope's standard error; a series
// fails only when its slope is both above a floor that matters (units per minute) and
// significant (more than three standard errors).

export interface Point {
  /** Minutes since the start of the run. */
  readonly minutes: number;
  readonly value: number;
}

export interface Trend {
  readonly samples: number;
  /** Units per minute. */
  readonly slopePerMinute: number;
  readonly standardError: number;
  readonly first: number;
  readonly last: number;
  readonly max: number;
}

/** The least-squares slope of `points` and its standard error (Infinity with fewer than three points). */
export function fitLine(points: readonly Point[]): Trend {
  const n = points.length;
  const values = points.map((point) => point.value);
  const base = { samples: n, first: values[0] ?? Number.NaN, last: values.at(-1) ?? Number.NaN, max: n === 0 ? Number.NaN : Math.max(...values) };
  if (n < 3) return { ...base, slopePerMinute: 0, standardError: Number.POSITIVE_INFINITY };
  const meanX = points.reduce((sum, point) => sum + point.minutes, 0) / n;
  const meanY = values.reduce((sum, value) => sum + value, 0) / n;
  let sxx = 0;
  let sxy = 0;
  for (const point of points) {
    sxx += (point.minutes - meanX) ** 2;
    sxy += (point.minutes - meanX) * (point.value - meanY);
  }
  if (sxx === 0) return { ...base, slopePerMinute: 0, standardError: Number.POSITIVE_INFINITY };
  const slope = sxy / sxx;
  const intercept = meanY - slope * meanX;
  const residuals = points.reduce((sum, point) => sum + (point.value - (intercept + slope * point.minutes)) ** 2, 0);
  const standardError = Math.sqrt(residuals / (n - 2) / sxx);
  return { ...base, slopePerMinute: slope, standardError };
}

/** Whether a fitted trend is a real upward one: above `floorPerMinute` and more than three standard errors from zero. */
export function trendsUp(trend: Trend, floorPerMinute: number): boolean {
  return trend.slopePerMinute > floorPerMinute && trend.slopePerMinute > 3 * trend.standardError;
}

/** The points after the first `warmUpShare` of the run (caches, JIT and pools fill first). */
export function afterWarmUp(points: readonly Point[], warmUpShare: number): Point[] {
  if (points.length === 0) return [];
  const start = points[0]?.minutes ?? 0;
  const end = points.at(-1)?.minutes ?? 0;
  const from = start + (end - start) * warmUpShare;
  return points.filter((point) => point.minutes >= from);
}

/** The lowest point of each of `windows` equal spans of time (spans with no point are skipped). */
export function windowMinima(points: readonly Point[], windows: number): Point[] {
  if (points.length === 0) return [];
  const start = points[0]?.minutes ?? 0;
  const span = ((points.at(-1)?.minutes ?? 0) - start) / windows;
  if (span <= 0) return [...points];
  const minima: Point[] = [];
  for (let index = 0; index < windows; index++) {
    const from = start + index * span;
    const inside = points.filter((point) => point.minutes >= from && (index === windows - 1 ? point.minutes <= from + span : point.minutes < from + span));
    const lowest = inside.reduce<Point | undefined>((low, point) => (low === undefined || point.value < low.value ? point : low), undefined);
    if (lowest !== undefined) minima.push(lowest);
  }
  return minima;
}
