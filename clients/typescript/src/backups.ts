/** Backups, their verification and restores: each call resolves with the job's final result.
 *
 * The request asks the server to wait for the job (`Prefer: wait=N`); a job that outlasts
 * that wait is polled to its end and its final state read back, so the answer has
 * the same shape either way. A job that fails rejects with JobFailedError. */
import { currentConfig } from './config.js';
import { JobFailedError, request } from './http.js';
import { pollUntilEnded, waitForJob } from './jobs.js';
import type {
  Backup, BackupFinished, BackupList, BackupQueued, CreateBackupRequest, DryRun,
  ListBackupsQuery, Rehearsal, Restore, RestoreRequest, Verification, VerificationFailed,
  VerificationQueued, VerifyLevel,
} from './types.js';

const BACKUP = '/api/system/backup';

export interface JobOptions {
  /** Seconds to ask the server to wait (default: configure's `wait`, 60). */
  wait?: number;
}

/** Starts a backup and resolves once it has completed: `result.backupId`, `result.backup`. */
export async function createBackup(backup: CreateBackupRequest = {},
                                   options: JobOptions = {}): Promise<BackupFinished> {
  const answer = await request<BackupFinished | BackupQueued>(
    'POST', BACKUP, { body: backup, wait: waitOf(options) });
  const finished = answer.status === 200
    ? answer.body as BackupFinished
    : await followBackup(answer.body as BackupQueued);
  if (finished.status === 'failed') {
    throw new JobFailedError(`backup ${finished.backupId} failed: ${finished.backup.error}`, finished);
  }
  return finished;
}

async function followBackup(queued: BackupQueued): Promise<BackupFinished> {
  await waitForJob(queued.jobId);
  const backup = await showBackup(queued.backupId);
  return { ...queued, status: backup.status === 'completed' ? 'completed' : 'failed', backup };
}

/** One page of backups, newest first, with `total` and `totalSize` over every match. */
export async function listBackups(query: ListBackupsQuery = {}): Promise<BackupList> {
  return (await request<BackupList>('GET', BACKUP, { query })).body;
}

async function showBackup(backupId: string): Promise<Backup> {
  return (await request<Backup>('GET', `${BACKUP}/${encodeURIComponent(backupId)}`)).body;
}

export interface VerifyOptions extends JobOptions {
  /** `integrity` (default): checksums and the archive; `restore`: a real test restore. */
  level?: VerifyLevel;
}

/** Verifies a backup and resolves with the verdict: `isValid`, `checks`, `warnings`. */
export async function verifyBackup(backupId: string,
                                   options: VerifyOptions = {}): Promise<Verification> {
  const answer = await request<Verification | VerificationFailed | VerificationQueued>(
    'POST', `${BACKUP}/verify`,
    { body: { backupId, level: options.level ?? 'integrity' }, wait: waitOf(options) });
  const verdict = answer.status === 200
    ? answer.body as Verification | VerificationFailed
    : await followVerification(answer.body as VerificationQueued);
  if (verdict.status === 'failed') {
    throw new JobFailedError(`verification of ${backupId} failed: ${verdict.error}`, verdict);
  }
  return verdict;
}

async function followVerification(
    queued: VerificationQueued): Promise<Verification | VerificationFailed> {
  const job = await waitForJob(queued.jobId);
  const result = (await showBackup(queued.backupId)).verificationResult;
  if (job.status === 'failed' || !result) {
    return { ...queued, status: 'failed', error: job.error ?? 'the verification job failed' };
  }
  return { ...queued, ...result, status: 'completed' };
}

/** A dry run: what restoring would do, changing nothing (answered at once). */
export function restoreBackup(
  restore: RestoreRequest & { dryRun: true; rehearse?: false }, options?: JobOptions): Promise<DryRun>;
/** A dry run and a rehearsal: a real restore into a scratch database, dropped afterwards. */
export function restoreBackup(
  restore: RestoreRequest & { dryRun: true; rehearse: true }, options?: JobOptions): Promise<Rehearsal>;
/** A restore (into `targetDatabase`, or over the database with `confirmDataLoss: true`);
 * resolves with the restore in its final state once it has completed. */
export function restoreBackup(restore: RestoreRequest, options?: JobOptions): Promise<Restore>;
export async function restoreBackup(restore: RestoreRequest,
                                    options: JobOptions = {}): Promise<DryRun | Rehearsal | Restore> {
  const answer = await request<DryRun | Rehearsal | Restore>(
    'POST', `${BACKUP}/restore`, { body: restore, wait: waitOf(options) });
  const body = answer.body;
  if ('rehearsal' in body) {
    const rehearsal = await finalRestore(body.rehearsal, answer.status);
    return { ...body, rehearsal };
  }
  if ('analysis' in body) return body;
  return finalRestore(body, answer.status);
}

async function finalRestore(restore: Restore, status: number): Promise<Restore> {
  const final = status === 200 ? restore : await pollUntilEnded<Restore>(
    `${BACKUP}/restore/${restore.restoreId}`, `restore ${restore.restoreId}`);
  if (final.status === 'failed') {
    throw new JobFailedError(`restore ${final.restoreId} failed: ${final.error}`, final);
  }
  return final;
}

function waitOf(options: JobOptions): number {
  return options.wait ?? currentConfig().wait;
}
