/** The dashboard page: login, then the mesh view polled and redrawn in place. */
import type { MeshView } from '../view-types.js';
import { ApiCallError, DashboardApi } from './api.js';
import { byId } from './dom.js';
import { TopologyGraph } from './graph.js';
import { renderPolicyMatrix, renderServices, renderSidecars, renderWarnings } from './panels.js';

/** Poll interval; reports arrive every few seconds, so this shows each one soon after. */
const POLL_MS = 1500;

const api = new DashboardApi();
let graph: TopologyGraph | undefined;
let pollTimer: number | undefined;
let policyShape = '';

function showLogin(message?: string): void {
  window.clearTimeout(pollTimer);
  byId('dashboard').hidden = true;
  byId('login').hidden = false;
  const error = byId('login-error');
  error.textContent = message ?? '';
  error.hidden = message === undefined;
  byId<HTMLInputElement>('token').focus();
}

function showDashboard(): void {
  byId('login').hidden = true;
  byId('dashboard').hidden = false;
  graph ??= new TopologyGraph(byId('graph'), byId('graph-summary'));
  void poll();
}

async function poll(): Promise<void> {
  window.clearTimeout(pollTimer);
  try {
    render(await api.mesh());
    byId('status').textContent = `live · updated ${new Date().toLocaleTimeString()}`;
    byId('status').className = 'live';
  } catch (err) {
    if (err instanceof ApiCallError && err.status === 401) return showLogin('Your session ended; log in again.');
    byId('status').textContent = `cannot reach the control plane (${(err as Error).message}); retrying`;
    byId('status').className = 'stale';
  }
  pollTimer = window.setTimeout(() => void poll(), POLL_MS);
}

function render(view: MeshView): void {
  byId('config-version').textContent = `config v${view.configVersion}`;
  renderWarnings(byId('warnings'), view);
  graph?.update(view);
  renderServices(byId('services'), view);
  renderSidecars(byId('sidecars'), view);
  const shape = JSON.stringify([view.policies, view.services.map((s) => s.name)]);
  if (shape !== policyShape) {
    policyShape = shape;
    renderPolicyMatrix(byId('policies'), view, (change) => void changePolicy(change));
  }
}

async function changePolicy(change: Parameters<Parameters<typeof renderPolicyMatrix>[2]>[0]): Promise<void> {
  const note = byId('policy-note');
  try {
    if (change.kind === 'default') await api.setDefaultPolicy(change.action);
    else if (change.choice === 'default') await api.deleteRule(change.from, change.to);
    else await api.putRule(change.from, change.to, change.choice);
    note.textContent = 'Saved; sidecars apply it within moments.';
    note.className = 'saved';
  } catch (err) {
    note.textContent = `Not saved: ${(err as Error).message}`;
    note.className = 'bad';
  }
  policyShape = '';
  await poll();
}

byId<HTMLFormElement>('login-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = byId<HTMLInputElement>('token');
  api.login(input.value.trim()).then(
    () => {
      input.value = '';
      showDashboard();
    },
    (err: unknown) => showLogin(err instanceof ApiCallError && err.status === 401 ? 'That is not the admin token of this control plane.' : `Cannot log in: ${(err as Error).message}`),
  );
});
byId('logout').addEventListener('click', () => {
  void api.logout().finally(() => showLogin());
});

api.resume().then(
  (open) => (open ? showDashboard() : showLogin()),
  (err: unknown) => showLogin(`Cannot reach the control plane: ${(err as Error).message}`),
);
