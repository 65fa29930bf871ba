// The client beyond the seed's examples: jobs the server did not wait for, schedules,
// errors, configuration, and the formatters (the dashboard's own text, case by case).
import {
  ApiError, configure, createBackup, createBackupSchedule, deleteBackupSchedule,
  formatBackupDate, formatFileSize, listBackupSchedules, listBackups, restoreBackup,
  updateBackupSchedule, verifyBackup, waitForJob,
} from '@rentalshop/utils';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { afterEach, before, describe, test } from 'node:test';

let backupId: string;  // a small backup, made once

before(async () => {
  backupId = (await createBackup({ type: 'schema-only' })).backupId;
});

afterEach(() => configure({ wait: undefined, baseUrl: undefined, pollIntervalMs: undefined }));

describe('a job that outlasts the server\'s wait is followed to its end', () => {
  test('a backup', async () => {
    configure({ wait: 0, pollIntervalMs: 100 });  // no Prefer: the server answers 202
    const result = await createBackup({ type: 'schema-only', compress: false });
    assert.equal(result.status, 'completed');
    assert.equal(result.backup.status, 'completed');
    assert.equal(result.backup.compression, 'none');
    const job = await waitForJob(result.jobId);
    assert.equal(job.status, 'completed');
    assert.equal(job.backupId, result.backupId);
  });

  test('a verification and a rehearsal', async () => {
    configure({ wait: 0, pollIntervalMs: 100 });
    const verification = await verifyBackup(backupId);
    assert.equal(verification.isValid, true);
    assert.equal(verification.status, 'completed');
    const rehearsed = await restoreBackup({ backupId, dryRun: true, rehearse: true });
    assert.equal(rehearsed.analysis.canRestore, true);
    assert.equal(rehearsed.rehearsal.status, 'completed');
    assert.equal(rehearsed.rehearsal.mode, 'rehearsal');
  });
});

test('schedules are created, changed, listed and deleted', async () => {
  const schedule = await createBackupSchedule({ name: 'client test', frequency: 'weekly',
                                                dayOfWeek: 6, time: '03:15' });
  const changed = await updateBackupSchedule(schedule.id, { enabled: false, retention: 14 });
  assert.deepEqual([changed.enabled, changed.retention, changed.time], [false, 14, '03:15']);
  assert.ok((await listBackupSchedules()).schedules.some((s) => s.id === schedule.id));
  assert.deepEqual(await deleteBackupSchedule(schedule.id), { deleted: schedule.id });
  assert.ok(!(await listBackupSchedules()).schedules.some((s) => s.id === schedule.id));
});

test('the API\'s refusals are ApiErrors with its code and message', async () => {
  await assert.rejects(
    // @ts-expect-error: the types know the backup types too
    createBackup({ type: 'differential' }),
    (error: unknown) => error instanceof ApiError && error.status === 400
      && error.code === 'invalid_request' && /type/.test(error.message));
  await assert.rejects(verifyBackup('backup-2024-01-15T10-30-00-000Z'),
                       (error: unknown) => error instanceof ApiError && error.status === 404);
  await assert.rejects(listBackups({ perPage: 500 }),
                       (error: unknown) => error instanceof ApiError && error.status === 400);
});

test('a list can be filtered and paged', async () => {
  const page = await listBackups({ type: 'schema-only', perPage: 1 });
  assert.equal(page.backups.length, 1);
  assert.equal(page.perPage, 1);
  assert.ok(page.total >= 1);
  assert.ok(page.backups.every((backup) => backup.type === 'schema-only'));
});

test('the address comes from configure() or RENTALSHOP_API_URL', async () => {
  const url = process.env.RENTALSHOP_API_URL;
  assert.ok(url, 'the harness sets RENTALSHOP_API_URL');
  configure({ baseUrl: `${url}/` });  // a trailing slash is fine
  assert.ok(Array.isArray((await listBackups()).backups));
  configure({ baseUrl: undefined });
  delete process.env.RENTALSHOP_API_URL;
  try {
    await assert.rejects(listBackups(), /RENTALSHOP_API_URL/);
  } finally {
    process.env.RENTALSHOP_API_URL = url;
  }
});

test('formatFileSize writes what the dashboard writes', () => {
  const file = process.env.RENTALSHOP_FORMAT_CASES;
  assert.ok(file, 'the harness writes the dashboard\'s sizes to RENTALSHOP_FORMAT_CASES');
  const cases = JSON.parse(readFileSync(file, 'utf8')) as [number | null, string][];
  assert.ok(cases.length > 100);
  for (const [size, text] of cases) assert.equal(formatFileSize(size), text, `size ${size}`);
  assert.equal(formatFileSize(undefined), '—');
});

test('formatBackupDate writes a day, a date and a time in a zone', () => {
  assert.equal(formatBackupDate('2024-01-15T10:30:00.000Z'), 'Mon 2024-01-15 10:30 UTC');
  assert.equal(formatBackupDate('2024-07-15T23:59:59.999Z', { timeZone: 'Europe/Berlin' }),
               'Tue 2024-07-16 01:59 CEST');
  assert.equal(formatBackupDate(new Date(Date.UTC(2024, 1, 29, 0, 5))), 'Thu 2024-02-29 00:05 UTC');
  assert.equal(formatBackupDate(null), '—');
});
