/** Following a job the server did not wait for to its end. */
import { currentConfig } from './config.js';
import { request } from './http.js';
import type { Job } from './types.js';

export interface WaitOptions {
  /** Give up after this long, in ms (default: configure's jobTimeoutMs, 1 hour). */
  timeoutMs?: number;
  /** Time between two polls, in ms (default: configure's pollIntervalMs, 1000). */
  intervalMs?: number;
}

/** Polls `GET /api/system/jobs/{jobId}` until the job has ended; resolves with its last
 * status (`completed` or `failed`), rejects if it has not ended within `timeoutMs`. */
export async function waitForJob(jobId: string, options: WaitOptions = {}): Promise<Job> {
  return pollUntilEnded(`/api/system/jobs/${encodeURIComponent(jobId)}`, `job ${jobId}`,
                        options);
}

/** GETs `path` until its `status` is `completed` or `failed`; resolves with the last answer. */
export async function pollUntilEnded<T extends { status?: string | null }>(
    path: string, what: string, options: WaitOptions = {}): Promise<T> {
  const config = currentConfig();
  const timeoutMs = options.timeoutMs ?? config.jobTimeoutMs;
  const intervalMs = options.intervalMs ?? config.pollIntervalMs;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { body } = await request<T>('GET', path);
    if (body.status === 'completed' || body.status === 'failed') return body;
    if (Date.now() + intervalMs > deadline) {
      throw new Error(`${what} is still ${body.status} after ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
