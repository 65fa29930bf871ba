/** Where the API is and how to authenticate: set once, with configure() or the environment. */

export interface ClientOptions {
  /** The app's address, e.g. `http://127.0.0.1:8000` (default: RENTALSHOP_API_URL). */
  baseUrl?: string;
  /** A bearer token, `flask --app app tokens create ...` (default: RENTALSHOP_API_TOKEN). */
  token?: string;
  /** Seconds to ask the server to wait for a job (`Prefer: wait=N`; it waits at most 60). */
  wait?: number;
  /** How long to poll a job that outlasted the server's wait, in ms (default 1 hour). */
  jobTimeoutMs?: number;
  /** Time between two polls of such a job, in ms (default 1000). */
  pollIntervalMs?: number;
}

export type ClientConfig = Required<Omit<ClientOptions, 'token'>> & { token?: string };

const DEFAULTS = { wait: 60, jobTimeoutMs: 3_600_000, pollIntervalMs: 1000 };
let configured: ClientOptions = {};

/** Set options for every later call; options left out keep their value. */
export function configure(options: ClientOptions): void {
  configured = { ...configured, ...options };
}

/** The options in force: configure()'s, else the environment's, else the defaults. */
export function currentConfig(): ClientConfig {
  const env = environment();
  const baseUrl = configured.baseUrl ?? env.RENTALSHOP_API_URL;
  if (!baseUrl) {
    throw new Error('no API address: set RENTALSHOP_API_URL or call configure({ baseUrl })');
  }
  return {
    ...DEFAULTS,
    ...withoutUndefined(configured),
    baseUrl: baseUrl.replace(/\/+$/, ''),
    token: configured.token ?? env.RENTALSHOP_API_TOKEN,
  };
}

function environment(): Record<string, string | undefined> {
  // Node's process.env; a browser has none.
  const host = globalThis as { process?: { env?: Record<string, string | undefined> } };
  return host.process?.env ?? {};
}

function withoutUndefined<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as Partial<T>;
}
