/** What the tests share: what a test printed, and a backup to work on. */
import type { TestContext } from 'node:test';
import { format } from 'node:util';

/** Lines the test prints with console.log and console.warn (still printed). */
export function printed(t: TestContext): { log: string[]; warn: string[] } {
  const lines = { log: [] as string[], warn: [] as string[] };
  for (const level of ['log', 'warn'] as const) {
    const original = console[level];
    t.mock.method(console, level, (...args: unknown[]) => {
      lines[level].push(format(...args));
      original(...args);
    });
  }
  return lines;
}

export const BACKUP_ID = /^backup-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$/;
