// The seed's "5. Verify Backup Integrity" example. What is between "seed: begin" and
// "seed: end" is pasted verbatim from the seed (tests/clients/test_typescript_client.py
// checks that it is), except that `backupId`, the id of a backup made just before, stands
// in the place of the seed's example id 'backup-2024-01-15T10-30-00-000Z'.
import { verifyBackup } from '@rentalshop/utils';
import { createBackup } from '@rentalshop/utils';
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { printed } from './support.js';

let backupId: string;

before(async () => {
  backupId = (await createBackup({ type: 'schema-only' })).backupId;
});

test('Verify Backup Integrity', async (t) => {
  const output = printed(t);
  // seed: begin
  // Verify backup integrity
  const verification = await verifyBackup(backupId);

  if (verification.isValid) {
    console.log('✅ Backup is valid');
  } else {
    console.log('❌ Backup is corrupted');
    console.log('Warnings:', verification.warnings);
  }
  // seed: end
  assert.equal(verification.isValid, true);
  assert.deepEqual(verification.warnings, []);
  assert.ok(verification.checks.length >= 3 && verification.checks.every((check) => check.ok));
  assert.deepEqual(output.log, ['✅ Backup is valid']);
});
