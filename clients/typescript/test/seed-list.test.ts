// The seed's "3. List and Manage Backups" and "Monitoring & Alerts" examples (the latter
// use the functions the former imports). What is between "seed: begin" and "seed: end" is
// pasted verbatim from the seed (tests/clients/test_typescript_client.py checks that it is).
import { listBackups, formatFileSize, formatBackupDate } from '@rentalshop/utils';
import { createBackup } from '@rentalshop/utils';
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { printed } from './support.js';

before(async () => {
  await createBackup({ type: 'schema-only' });
});

test('List and Manage Backups', async (t) => {
  const output = printed(t);
  // seed: begin
  // Get all backups
  const response = await listBackups();

  response.backups.forEach(backup => {
    console.log(`📁 ${backup.filename}`);
    console.log(`📊 Size: ${formatFileSize(backup.size)}`);
    console.log(`📅 Created: ${formatBackupDate(backup.created)}`);
  });
  // seed: end
  assert.ok(response.backups.length >= 1);
  assert.equal(output.log.length, 3 * response.backups.length);
  const [filename, size, created] = output.log;
  assert.match(filename, /^📁 backup-\S+$/);
  assert.match(size, /^📊 Size: [\d.]+ (B|KiB|MiB|GiB)$/);
  assert.match(created, /^📅 Created: \w{3} \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC$/);
});

test('Backup Status Monitoring', async (t) => {
  const output = printed(t);
  // seed: begin
  // Check backup health
  const backups = await listBackups();
  const recentBackup = backups.backups[0];

  if (recentBackup) {
    const daysSinceBackup = (Date.now() - new Date(recentBackup.created).getTime()) / (1000 * 60 * 60 * 24);

    if (daysSinceBackup > 1) {
      console.warn('⚠️ No recent backup found!');
    }
  }
  // seed: end
  assert.ok(recentBackup, 'a backup was made before this test');
  assert.deepEqual(output.warn, []);
});

test('Storage Usage Monitoring', async (t) => {
  const output = printed(t);
  // seed: begin
  // Monitor backup storage usage
  const response = await listBackups();
  const totalSize = response.totalSize;
  const totalBackups = response.total;

  console.log(`📊 Total backups: ${totalBackups}`);
  console.log(`💾 Total size: ${formatFileSize(totalSize)}`);
  // seed: end
  const sizes = response.backups.reduce((sum, backup) => sum + (backup.size ?? 0), 0);
  assert.equal(totalSize, sizes);  // one page holds them all here
  assert.deepEqual(output.log, [`📊 Total backups: ${response.backups.length}`,
                                `💾 Total size: ${formatFileSize(sizes)}`]);
});
