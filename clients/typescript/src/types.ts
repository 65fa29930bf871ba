/** Names for the generated types (schema.d.ts) that the client's functions take and return. */
import type { components, paths } from './schema.js';

type Schemas = components['schemas'];

export type Backup = Schemas['Backup'];
export type BackupList = Schemas['BackupList'];
export type BackupQueued = Schemas['BackupQueued'];
/** A backup whose job ended: `backupId`, `status` and the backup itself. */
export type BackupFinished = Schemas['BackupFinished'];
export type CreateBackupRequest = Schemas['CreateBackupRequest'];
export type ListBackupsQuery = NonNullable<paths['/api/system/backup']['get']['parameters']['query']>;

export type VerifyLevel = NonNullable<Schemas['VerifyRequest']['level']>;
export type VerificationQueued = Schemas['VerificationQueued'];
/** A verification's verdict: `isValid`, `checks`, `warnings`, `checkedAt`. */
export type Verification = Schemas['Verification'];
export type VerificationFailed = Schemas['VerificationFailed'];
export type Check = Schemas['Check'];

export type RestoreRequest = Schemas['RestoreRequest'];
export type Restore = Schemas['Restore'];
export type DryRun = Schemas['DryRun'];
export type Rehearsal = Schemas['Rehearsal'];

export type Schedule = Schemas['Schedule'];
export type CreateScheduleRequest = Schemas['CreateScheduleRequest'];
export type ScheduleFields = Schemas['ScheduleFields'];
export type ScheduleList =
  paths['/api/system/backup/schedule']['get']['responses'][200]['content']['application/json'];
export type ScheduleDeleted =
  paths['/api/system/backup/schedule/{scheduleId}']['delete']['responses'][200]['content']['application/json'];

export type Job = Schemas['Job'];
export type ErrorBody = Schemas['Error'];
