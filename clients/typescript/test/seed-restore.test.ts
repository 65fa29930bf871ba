// The seed's "4. Restore from Backup" examples. What is between "seed: begin" and
// "seed: end" is pasted verbatim from the seed (tests/clients/test_typescript_client.py
// checks that it is), except for one thing: the seed's example id
// 'backup-2024-01-15T10-30-00-000Z' names no backup here, so `backupId` stands in its place,
// the id of a backup made just before (ids have that form: backup-<UTC time of creation>).
import { restoreBackup } from '@rentalshop/utils';
import { createBackup, listBackups } from '@rentalshop/utils';
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { BACKUP_ID, printed } from './support.js';

let backupId: string;

before(async () => {
  backupId = (await createBackup({ type: 'full' })).backupId;
  assert.match(backupId, BACKUP_ID);
});

test('Dry Run (Recommended First)', async (t) => {
  const output = printed(t);
  // seed: begin
  // Test restore without actually restoring
  const dryRun = await restoreBackup({
    backupId: backupId,
    dryRun: true
  });

  console.log('Dry run analysis:', dryRun.analysis);
  // seed: end
  assert.equal(dryRun.dryRun, true);
  assert.equal(dryRun.analysis.canRestore, true);
  assert.match(output.log[0], /^Dry run analysis: \{/);
});

test('Actual Restore', async (t) => {
  const output = printed(t);
  // seed: begin
  // Perform actual restore (WARNING: This will overwrite current data)
  const restore = await restoreBackup({
    backupId: backupId,
    confirmDataLoss: true
  });

  console.log('Restore completed:', restore);
  // seed: end
  assert.equal(restore.status, 'completed');
  assert.equal(restore.mode, 'overwrite');
  assert.equal(restore.backupId, backupId);
  assert.match(restore.safetyBackupId ?? '', BACKUP_ID);  // taken first, to undo it
  assert.match(output.log[0], /^Restore completed: \{/);
  const safety = (await listBackups()).backups.find((b) => b.id === restore.safetyBackupId);
  assert.equal(safety?.origin, 'safety');
});
