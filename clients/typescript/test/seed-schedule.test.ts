// The seed's "6. Schedule Automated Backups" example. What is between "seed: begin" and
// "seed: end" is pasted verbatim from the seed (tests/clients/test_typescript_client.py
// checks that it is).
import { createBackupSchedule } from '@rentalshop/utils';
import { deleteBackupSchedule, listBackupSchedules } from '@rentalshop/utils';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { printed } from './support.js';

test('Schedule Automated Backups', async (t) => {
  const output = printed(t);
  // seed: begin
  // Create daily backup schedule
  const schedule = await createBackupSchedule({
    name: 'Daily Full Backup',
    type: 'full',
    frequency: 'daily',
    time: '02:00',
    retention: 30, // Keep 30 days
    enabled: true
  });

  console.log('Schedule created:', schedule.id);
  // seed: end
  assert.deepEqual(output.log, [`Schedule created: ${schedule.id}`]);
  const [listed] = (await listBackupSchedules()).schedules.filter((s) => s.id === schedule.id);
  assert.equal(listed?.name, 'Daily Full Backup');
  assert.equal(listed?.retention, 30);
  assert.equal(listed?.time, '02:00');
  assert.match(listed?.nextRunAt ?? '', /T02:00:00\.000Z$/);  // UTC, the default zone
  await deleteBackupSchedule(schedule.id);
});
