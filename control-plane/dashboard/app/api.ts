/** The page's calls to the control plane: same origin, the session cookie, the CSRF token on changes. */
import type { PoliciesView } from '../../../proto/control.js';
import type { MeshView } from '../view-types.js';

/** A refused call, with the control plane's error code. */
export class ApiCallError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class DashboardApi {
  #csrfToken: string | undefined;

  /** Whether a session is open already (a reload keeps the cookie). */
  async resume(): Promise<boolean> {
    try {
      this.#csrfToken = (await this.#call<{ csrfToken: string }>('GET', '/ui/api/session')).csrfToken;
      return true;
    } catch (err) {
      if (err instanceof ApiCallError && err.status === 401) return false;
      throw err;
    }
  }

  async login(token: string): Promise<void> {
    this.#csrfToken = (await this.#call<{ csrfToken: string }>('POST', '/ui/login', { token })).csrfToken;
  }

  async logout(): Promise<void> {
    await this.#call('POST', '/ui/logout');
    this.#csrfToken = undefined;
  }

  mesh(): Promise<MeshView> {
    return this.#call<MeshView>('GET', '/ui/api/mesh');
  }

  setDefaultPolicy(action: 'allow' | 'deny'): Promise<PoliciesView> {
    return this.#call<PoliciesView>('PUT', '/ui/api/v1/policies/default', { action });
  }

  putRule(from: string, to: string, action: 'allow' | 'deny'): Promise<PoliciesView> {
    return this.#call<PoliciesView>('PUT', '/ui/api/v1/policies/rules', { from, to, action });
  }

  deleteRule(from: string, to: string): Promise<PoliciesView> {
    return this.#call<PoliciesView>('DELETE', '/ui/api/v1/policies/rules', { from, to });
  }

  async #call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (method !== 'GET' && this.#csrfToken !== undefined) headers['x-trellis-csrf'] = this.#csrfToken;
    const response = await fetch(path, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
    const answer = (await response.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
    if (!response.ok) throw new ApiCallError(response.status, answer.error?.code ?? 'UNKNOWN', answer.error?.message ?? `${response.status} ${response.statusText}`);
    return answer as T;
  }
}
