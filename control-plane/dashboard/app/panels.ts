/** The page's tables: warnings, golden signals per service, sidecars and gateways, the policy matrix. */
import type { MeshView, ServiceView } from '../view-types.js';
import { formatBytes, formatMs, formatRate, formatUntil, h } from './dom.js';

export function renderWarnings(container: HTMLElement, view: MeshView): void {
  container.replaceChildren(
    ...(view.warnings.length === 0
      ? [h('span', { class: 'ok' }, 'No warnings')]
      : view.warnings.map((w) => h('span', { class: `warning ${w.kind}`, 'data-kind': w.kind, 'data-subject': w.subject }, w.message))),
  );
  container.classList.toggle('has-warnings', view.warnings.length > 0);
}

export function renderServices(container: HTMLElement, view: MeshView): void {
  const rows = view.services.map((s) =>
    h(
      'tr',
      { 'data-service': s.name },
      h('th', { scope: 'row' }, s.name),
      h('td', { 'data-signal': 'endpoints' }, `${s.endpoints.filter((e) => e.healthy && e.connected).length}/${s.endpoints.length}`),
      h('td', { 'data-signal': 'connectionsPerSecond', class: 'num' }, formatRate(s.connectionsPerSecond)),
      h('td', { 'data-signal': 'opened', class: 'num' }, s.opened),
      h('td', { 'data-signal': 'active', class: 'num' }, s.active),
      h('td', { 'data-signal': 'success', class: 'num' }, successRate(s)),
      h('td', { 'data-signal': 'failed' }, failures(s)),
      h('td', { 'data-signal': 'connectMs', class: 'num' }, `${formatMs(s.connectMs.p50)} / ${formatMs(s.connectMs.p99)}`),
      h('td', { 'data-signal': 'durationMs', class: 'num' }, `${formatMs(s.durationMs.p50)} / ${formatMs(s.durationMs.p90)} / ${formatMs(s.durationMs.p99)}`),
      h('td', { 'data-signal': 'bytes', class: 'num' }, `${formatBytes(s.bytes)} (${formatBytes(s.bytesPerSecond)}/s)`),
    ),
  );
  container.replaceChildren(
    h(
      'table',
      {},
      h(
        'thead',
        {},
        h('tr', {}, ...['service', 'healthy', 'conn/s', 'opened', 'open', 'success', 'failures by code', 'connect p50/p99', 'duration p50/p90/p99', 'bytes'].map((t) => h('th', { scope: 'col' }, t))),
      ),
      h('tbody', {}, ...rows),
    ),
  );
}

function successRate(s: ServiceView): string {
  const failed = Object.values(s.failed).reduce((a, b) => a + b, 0);
  const total = s.opened + failed;
  return total === 0 ? '–' : `${((100 * (total - failed)) / total).toFixed(1)} %`;
}

function failures(s: ServiceView): HTMLElement {
  const entries = Object.entries(s.failed).sort((a, b) => b[1] - a[1]);
  if (entries.length === 0) return h('span', { class: 'muted' }, 'none');
  return h('span', {}, ...entries.map(([code, count]) => h('span', { class: 'code', 'data-code': code }, `${code} ${count}`)));
}

export function renderSidecars(container: HTMLElement, view: MeshView): void {
  const now = view.generatedAt;
  const rows = [
    ...view.sidecars.map((s) =>
      h(
        'tr',
        { 'data-sidecar': s.sidecarId },
        h('th', { scope: 'row' }, s.sidecarId),
        h('td', {}, s.service),
        h('td', {}, s.zone),
        h('td', {}, s.software ?? '–'),
        h('td', { class: s.healthy && s.connected ? 'good' : 'bad' }, !s.connected ? 'disconnected' : s.healthy ? 'healthy' : 'unhealthy'),
        certCell(s.certExpiresAt, s.certRenewalFailing, now),
        h('td', { class: behind(s.configVersionAcked, view.configVersion) ? 'bad' : '', 'data-field': 'config' }, configCell(s.configVersion, s.configVersionAcked)),
        h('td', { class: 'num' }, s.linksActive ?? '–'),
        h('td', { class: 'num' }, s.streamsActive ?? '–'),
      ),
    ),
    ...view.gateways.map((g) =>
      h(
        'tr',
        { 'data-gateway': `${g.zone}/${g.name}` },
        h('th', { scope: 'row' }, g.gatewayId),
        h('td', {}, `gateway ${g.name}`),
        h('td', {}, g.zone),
        h('td', {}, g.software ?? '–'),
        h('td', { class: g.connected ? 'good' : 'bad' }, g.connected ? 'connected' : 'disconnected'),
        certCell(g.certExpiresAt, g.certRenewalFailing, now),
        h('td', { class: behind(g.configVersionAcked, view.configVersion) ? 'bad' : '', 'data-field': 'config' }, configCell(g.configVersion, g.configVersionAcked)),
        h('td', { class: 'num' }, g.links.length),
        h('td', { class: 'num' }, '–'),
      ),
    ),
  ];
  container.replaceChildren(
    h(
      'table',
      {},
      h('thead', {}, h('tr', {}, ...['id', 'service', 'zone', 'version', 'health', 'cert expires in', 'config applied (acked)', 'links', 'streams'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, ...rows),
    ),
  );
}

/** When the certificate expires, and whether its renewal is failing. */
function certCell(expiresAt: number | null, renewalFailing: boolean | null, now: number): HTMLElement {
  const until = formatUntil(expiresAt, now);
  return renewalFailing === true ? h('td', { class: 'bad', 'data-field': 'cert' }, `${until} (renewal failing)`) : h('td', { 'data-field': 'cert' }, until);
}

/** `v7 (acked v7)`: what the sender applies by its report, and what its session acked. */
function configCell(applied: number | null, acked: number | null): string {
  return `${applied === null ? '–' : `v${applied}`}${acked === null ? '' : ` (acked v${acked})`}`;
}

function behind(acked: number | null, current: number): boolean {
  return acked !== null && acked < current;
}

/** What a matrix cell asks for: a rule's action, or no rule (the default applies). */
export type CellChoice = 'allow' | 'deny' | 'default';

/**
 * Callers down, destinations across; each cell a rule or the default. Redrawn only when the
 * policies or the services change, so an open select is not pulled from under the pointer.
 */
export function renderPolicyMatrix(
  container: HTMLElement,
  view: MeshView,
  onChange: (change: { kind: 'default'; action: 'allow' | 'deny' } | { kind: 'rule'; from: string; to: string; choice: CellChoice }) => void,
): void {
  const { policies } = view;
  const services = view.services.map((s) => s.name);
  const sources = ['*', ...services];
  const ruleOf = (from: string, to: string): 'allow' | 'deny' | undefined => policies.rules.find((r) => r.from === from && r.to === to)?.action;
  const defaultSelect = h('select', { id: 'policy-default', 'aria-label': 'default action' }, h('option', { value: 'allow' }, 'allow'), h('option', { value: 'deny' }, 'deny'));
  defaultSelect.value = policies.defaultAction;
  defaultSelect.addEventListener('change', () => onChange({ kind: 'default', action: defaultSelect.value === 'deny' ? 'deny' : 'allow' }));
  const cell = (from: string, to: string): HTMLElement => {
    const rule = ruleOf(from, to);
    const select = h(
      'select',
      { 'data-from': from, 'data-to': to, 'aria-label': `${from} to ${to}`, class: rule ?? 'default' },
      h('option', { value: 'default' }, `default (${policies.defaultAction})`),
      h('option', { value: 'allow' }, 'allow'),
      h('option', { value: 'deny' }, 'deny'),
    );
    select.value = rule ?? 'default';
    select.addEventListener('change', () => onChange({ kind: 'rule', from, to, choice: select.value as CellChoice }));
    return h('td', {}, select);
  };
  container.replaceChildren(
    h('p', {}, h('label', { for: 'policy-default' }, 'Calls no rule matches: '), defaultSelect, h('span', { class: 'muted' }, ` · config v${policies.version}`)),
    h(
      'table',
      { class: 'matrix' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'caller ↓ / callee →'), ...services.map((s) => h('th', { scope: 'col' }, s)))),
      h('tbody', {}, ...sources.map((from) => h('tr', {}, h('th', { scope: 'row' }, from === '*' ? '* (anyone)' : from), ...services.map((to) => cell(from, to))))),
    ),
  );
}
