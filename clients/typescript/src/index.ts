/** @rentalshop/utils: a typed client for the PostgreSQL backup manager's JSON API.
 *
 * Set the address and token once, with RENTALSHOP_API_URL and RENTALSHOP_API_TOKEN or with
 * configure(); then call the functions. */
export { configure } from './config.js';
export type { ClientOptions } from './config.js';
export { ApiError, JobFailedError } from './http.js';
export { createBackup, listBackups, restoreBackup, verifyBackup } from './backups.js';
export type { JobOptions, VerifyOptions } from './backups.js';
export {
  createBackupSchedule, deleteBackupSchedule, listBackupSchedules, updateBackupSchedule,
} from './schedules.js';
export { waitForJob } from './jobs.js';
export type { WaitOptions } from './jobs.js';
export { formatBackupDate, formatFileSize } from './format.js';
export type { DateOptions } from './format.js';
export type * from './types.js';
export type { components, paths } from './schema.js';
