// The seed's "2. Create Backups" examples. What is between "seed: begin" and "seed: end" is
// pasted verbatim from the seed (tests/clients/test_typescript_client.py checks that it is).
import { createBackup } from '@rentalshop/utils';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BACKUP_ID, printed } from './support.js';

test('Full Backup (Recommended)', async (t) => {
  const output = printed(t);
  // seed: begin
  // Create a full backup
  const result = await createBackup({
    type: 'full',
    includeData: true,
    compress: true
  });

  console.log('Backup created:', result.backupId);
  // seed: end
  assert.match(result.backupId, BACKUP_ID);
  assert.equal(result.backup.status, 'completed');
  assert.equal(result.backup.type, 'full');
  assert.ok(result.backup.size && result.backup.size > 100_000);
  assert.deepEqual(output.log, [`Backup created: ${result.backupId}`]);
});

test('Schema-Only Backup', async () => {
  // seed: begin
  // Create schema-only backup (structure only)
  const result = await createBackup({
    type: 'schema-only',
    compress: true
  });
  // seed: end
  assert.equal(result.backup.status, 'completed');
  assert.equal(result.backup.type, 'schema-only');
  assert.ok(result.backup.tables?.every((table) => table.rows === null));
});

test('Incremental Backup', async () => {
  // seed: begin
  // Create incremental backup (changes only)
  const result = await createBackup({
    type: 'incremental',
    includeData: true,
    compress: true
  });
  // seed: end
  assert.equal(result.backup.status, 'completed');
  // Change capture is off here, so there is no chain to continue: the incremental is a full
  // that says why (docs/incremental.md).
  assert.match(result.backup.captureNote ?? '', /change capture is off|no chain/);
});
