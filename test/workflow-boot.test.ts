import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { openBootHarness, type BootHarness } from './helpers/boot-harness';

describe('createInstance: happy paths', () => {
  let h: BootHarness;
  before(async () => {
    h = await openBootHarness('wf-boot');
  });
  after(async () => {
    await h?.close();
  });

  test('boots from an image: ACTIVE on the best host, port and IP, domain running', async () => {
    const handle = await h.startBoot(h.request('happy-image'));
    const server = await handle.result();
    console.log(JSON.stringify(server, null, 2));
    assert.equal(server.status, 'ACTIVE');
    assert.deepEqual(await h.audit(), []);
  });
});
