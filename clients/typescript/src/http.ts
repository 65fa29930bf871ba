/** One JSON request to the API, and the errors it can end in. */
import { currentConfig } from './config.js';
import type { ErrorBody } from './types.js';

/** The API refused the request: `status` and the API's `code` (`invalid_request`, ...). */
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(`${status} ${code}: ${message}`);
    this.name = 'ApiError';
  }
}

/** The request was accepted, but the job it started failed; `result` is its final state. */
export class JobFailedError extends Error {
  constructor(message: string, readonly result: unknown) {
    super(message);
    this.name = 'JobFailedError';
  }
}

export interface Answer<T> {
  status: number;
  body: T;
}

interface RequestOptions {
  body?: unknown;
  query?: Record<string, string | number | undefined>;
  /** Ask the server to wait this many seconds for the job (Prefer: wait=N). */
  wait?: number;
}

export async function request<T>(method: string, path: string,
                                 options: RequestOptions = {}): Promise<Answer<T>> {
  const config = currentConfig();
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (config.token) headers.Authorization = `Bearer ${config.token}`;
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  if (options.wait) headers.Prefer = `wait=${Math.round(options.wait)}`;
  const response = await fetch(config.baseUrl + path + queryString(options.query), {
    method, headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const body = await response.json().catch(() => undefined);
  if (!response.ok) throw refusal(response, body);
  return { status: response.status, body: body as T };
}

function queryString(query: RequestOptions['query']): string {
  const pairs = Object.entries(query ?? {}).filter(([, value]) => value !== undefined);
  return pairs.length ? `?${new URLSearchParams(pairs.map(([k, v]) => [k, String(v)]))}` : '';
}

function refusal(response: Response, body: unknown): ApiError {
  const error = (body as Partial<ErrorBody> | undefined)?.error;
  return error
    ? new ApiError(response.status, error.code, error.message)
    : new ApiError(response.status, 'http_error', response.statusText || 'no JSON error body');
}
