/**
 * bootflow's compute and volume answers against tempest's own response schemas
 * (tempest/lib/api_schema/response/compute/v2_* and volume/v3_*): test/tempest/response_schemas.py drives
 * tempest.lib's service clients, which validate every body and status for the microversion they send and
 * check the echoed microversion header, at every compute microversion bootflow claims (2.1..max) and at
 * the volume microversions where Cinder's volume body changes up to bootflow's maximum (snapshots at those
 * before 3.14, which tempest's snapshot schemas describe), as an admin and as a member, over HTTP against the
 * api role. Tempest comes from scripts/setup-openstack-clients.sh.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startApiServer, type ApiServer } from '../api';
import { MAX_MICROVERSION } from '../api/compute/microversion';
import { bootstrapCloud, ensureServiceCatalog, type BootstrapResult } from '../cloud/bootstrap';
import { DEFAULT_HOSTS } from '../cloud/hosts';
import { openApiTestEnv, type ApiTestEnv } from './helpers/api';

const ROOT = path.resolve(__dirname, '..');
const PYTHON = path.join(ROOT, '.openstack', 'tempest-venv', 'bin', 'python');
const SCRIPT = path.join(ROOT, 'test', 'tempest', 'response_schemas.py');
/** Where Cinder's volume body changes up to bootflow's 3.50: group_id 3.13, provider_id 3.21, shared_targets 3.48. */
const VOLUME_VERSIONS = ['3.0', '3.13', '3.21', '3.48', '3.50'];

function runPython(input: unknown): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(JSON.stringify(input));
  });
}

describe("tempest's response schemas", () => {
  let env: ApiTestEnv;
  let server: ApiServer;
  let boot: BootstrapResult;
  const servers: Record<string, string> = {};
  const volumes: string[] = [];
  const snapshots: string[] = [];

  before(async () => {
    if (!existsSync(PYTHON))
      throw new Error(`tempest is not installed at ${PYTHON}: run scripts/setup-openstack-clients.sh`);
    env = await openApiTestEnv({ label: 'api-tempest-schemas' });
    boot = await bootstrapCloud(env.cloud, { hosts: DEFAULT_HOSTS });
    const cloud = env.cloud;
    const member = await cloud.keystone.authenticate({
      username: boot.demo.username,
      password: boot.demo.password,
      projectName: boot.demo.projectName,
    });
    const host = DEFAULT_HOSTS[0]!.host;
    // The ACTIVE server is a server group's member (2.71's server_groups on show).
    const group = await cloud.nova.createServerGroup({
      name: 'schema-group',
      projectId: boot.demo.projectId,
      userId: member.context.userId,
      policy: 'anti-affinity',
    });
    // An ACTIVE server with a port (addresses), one in ERROR with its fault, one still building.
    for (const state of ['active', 'error', 'building'] as const) {
      const uuid = randomUUID();
      await cloud.nova.createInstance({
        uuid,
        requestId: `req-${uuid}`,
        name: `schema-${state}`,
        projectId: boot.demo.projectId,
        userId: member.context.userId,
        flavor: '1',
        imageRef: boot.imageId,
        networks: [boot.privateNetworkId],
        metadata: { role: state },
        userData: Buffer.from('#cloud-config\n').toString('base64'),
        tags: ['schema'],
        ...(state === 'active' ? { serverGroup: group.uuid } : {}),
      });
      servers[state] = uuid;
    }
    await cloud.nova.updateInstance(servers.active!, {
      vmState: 'active',
      taskState: null,
      powerState: 1,
      host,
      node: host,
      launchedAt: cloud.clock.now(),
    });
    await cloud.neutron.createPort({
      requestKey: `schema-${servers.active}`,
      networkId: boot.privateNetworkId,
      projectId: boot.demo.projectId,
      deviceId: servers.active!,
      deviceOwner: 'compute:nova',
    });
    await cloud.nova.updateInstance(servers.error!, { vmState: 'error', taskState: null });
    await cloud.nova.addFault(servers.error!, {
      code: 500,
      message: 'No valid host was found. There are not enough hosts available.',
      details: 'NoValidHost',
    });
    const volume = await cloud.cinder.createVolume({
      requestKey: `schema-${randomUUID()}`,
      projectId: boot.demo.projectId,
      userId: member.context.userId,
      sizeGb: 1,
      name: 'schema-volume',
    });
    volumes.push(volume.id);
    // A snapshot with metadata, and a volume made from it (its snapshot_id set).
    await cloud.cinder.waitForVolume(volume.id, { timeoutMs: 30_000 });
    const snapshot = await cloud.cinder.snapshots.create({
      volumeId: volume.id,
      projectId: boot.demo.projectId,
      userId: member.context.userId,
      name: 'schema-snapshot',
      metadata: { role: 'schema' },
    });
    snapshots.push(snapshot.id);
    for (let i = 0; i < 3000 && (await cloud.cinder.snapshots.get(snapshot.id)).status === 'creating'; i++)
      await new Promise((r) => setTimeout(r, 10));
    const fromSnapshot = await cloud.cinder.createVolume({
      requestKey: `schema-${randomUUID()}`,
      projectId: boot.demo.projectId,
      userId: member.context.userId,
      sizeGb: 1,
      snapshotId: snapshot.id,
    });
    volumes.push(fromSnapshot.id);
    server = await startApiServer(env.deps, { host: '127.0.0.1', port: 0 });
    // The catalog (and every link) must name the port the listener got: the bootstrap's registration
    // again, as a restart with a new public URL does.
    env.deps.publicUrl = server.url;
    await ensureServiceCatalog(env.cloud, server.url);
  });
  after(async () => {
    await server?.close();
    await env?.close();
  });

  test(`compute 2.1..2.${MAX_MICROVERSION.minor} and volume ${VOLUME_VERSIONS.join(', ')}: every answer matches`, async () => {
    const { code, stdout, stderr } = await runPython({
      auth_url: `${server.url}/identity/v3`,
      region: env.deps.region,
      admin: {
        username: boot.admin.username,
        password: boot.admin.password,
        project: boot.admin.projectName,
      },
      member: { username: boot.demo.username, password: boot.demo.password, project: boot.demo.projectName },
      servers,
      volumes,
      image: boot.imageId,
      snapshots,
      compute_max_minor: MAX_MICROVERSION.minor,
      volume_versions: VOLUME_VERSIONS,
    });
    const last = stdout.trim().split('\n').at(-1) ?? '';
    let report: { checked: number; failures: Array<{ check: string; error: string }> };
    try {
      report = JSON.parse(last) as typeof report;
    } catch {
      assert.fail(`response_schemas.py gave no report (exit ${code}): ${stderr.slice(-4000)}`);
    }
    assert.deepEqual(
      report.failures.slice(0, 20),
      [],
      `${report.failures.length} of ${report.checked} failed`,
    );
    assert.equal(code, 0, stderr.slice(-2000));
    // Every microversion was exercised: about thirty calls each.
    assert.ok(report.checked > MAX_MICROVERSION.minor * 30, `only ${report.checked} checks`);
  });
});
