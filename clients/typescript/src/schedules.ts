/** Backup schedules: create, change, delete, list. */
import { request } from './http.js';
import type {
  CreateScheduleRequest, Schedule, ScheduleDeleted, ScheduleFields, ScheduleList,
} from './types.js';

const SCHEDULE = '/api/system/backup/schedule';

/** Creates a schedule; `schedule.id` names it from then on (ids are never reused). */
export async function createBackupSchedule(schedule: CreateScheduleRequest): Promise<Schedule> {
  return (await request<Schedule>('POST', SCHEDULE, { body: schedule })).body;
}

/** Changes the fields given; the others keep their value. */
export async function updateBackupSchedule(id: number, fields: ScheduleFields): Promise<Schedule> {
  return (await request<Schedule>('PUT', `${SCHEDULE}/${id}`, { body: fields })).body;
}

/** Deletes a schedule; the backups it made stay. */
export async function deleteBackupSchedule(id: number): Promise<ScheduleDeleted> {
  return (await request<ScheduleDeleted>('DELETE', `${SCHEDULE}/${id}`)).body;
}

/** Every schedule: `{ schedules: [...] }`. */
export async function listBackupSchedules(): Promise<ScheduleList> {
  return (await request<ScheduleList>('GET', SCHEDULE)).body;
}
