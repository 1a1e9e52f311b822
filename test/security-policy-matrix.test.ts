/**
 * The policy matrix, through the client's entry point: every operation client.ts offers (server create,
 * show, list, list --all-projects, delete, hypervisor list, audit) is started as the same workflow with the
 * same request shape, by five callers, and ends exactly as Nova's default policy (2023.2+ "new defaults")
 * says: allowed, Forbidden (PolicyNotAuthorized, the caller's own project or an admin-only API), NotFound
 * (another project's server: Nova's project-scoped lookup finds nothing, so existence does not leak) — or
 * Unauthorized for a user with no role on the project, who cannot get a token scoped to it from Keystone.
 * Every refused cell changes no database row, no file and nothing the leak audit sees. (client.ts's
 * `server delete` shows the server first; its outcome per caller is the same as the delete workflow's.)
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { BootAuth, BootResult, DeleteResult } from '../workflows/types';
import type { HypervisorView, LeakFinding, ServerView } from '../workflows/operator-types';
import { addTenantUser, assertUnchanged, type Outcome } from './helpers/security';
import {
  HARNESS_TIMEOUT,
  openSecurityHarness,
  type ClientOperation,
  type SecurityHarness,
} from './helpers/security-harness';

type Caller = 'admin' | 'member' | 'reader' | 'noRole' | 'otherMember';
type Operation = 'create' | 'show' | 'list' | 'listAllProjects' | 'delete' | 'hypervisorList' | 'audit';

/**
 * Nova's defaults (nova/policies/servers.py, hypervisors.py; base.py's PROJECT_MEMBER_OR_ADMIN,
 * PROJECT_READER_OR_ADMIN, ADMIN) for a server in project `demo`. `admin` holds the admin role on its own
 * project (context_is_admin), `otherMember` is a member of another project, `noRole` a user with no role
 * on `demo`. list = servers:index (own project); listAllProjects = servers:index:get_all_tenants.
 */
const MATRIX: Record<Operation, Record<Caller, Outcome>> = {
  //                admin        member        reader        noRole            otherMember
  create: {
    admin: 'allowed',
    member: 'allowed',
    reader: 'Forbidden',
    noRole: 'Unauthorized',
    otherMember: 'allowed',
  },
  show: {
    admin: 'allowed',
    member: 'allowed',
    reader: 'allowed',
    noRole: 'Unauthorized',
    otherMember: 'NotFound',
  },
  list: {
    admin: 'allowed',
    member: 'allowed',
    reader: 'allowed',
    noRole: 'Unauthorized',
    otherMember: 'allowed',
  },
  listAllProjects: {
    admin: 'allowed',
    member: 'Forbidden',
    reader: 'Forbidden',
    noRole: 'Unauthorized',
    otherMember: 'Forbidden',
  },
  delete: {
    admin: 'allowed',
    member: 'allowed',
    reader: 'Forbidden',
    noRole: 'Unauthorized',
    otherMember: 'NotFound',
  },
  hypervisorList: {
    admin: 'allowed',
    member: 'Forbidden',
    reader: 'Forbidden',
    noRole: 'Unauthorized',
    otherMember: 'Forbidden',
  },
  audit: {
    admin: 'allowed',
    member: 'Forbidden',
    reader: 'Forbidden',
    noRole: 'Unauthorized',
    otherMember: 'Forbidden',
  },
};

const CALLERS: Caller[] = ['admin', 'member', 'reader', 'noRole', 'otherMember'];
const OPERATIONS = Object.keys(MATRIX) as Operation[];

describe(
  'policy matrix: every client operation × caller, through the client’s workflows',
  HARNESS_TIMEOUT,
  () => {
    let h: SecurityHarness;
    const auth = {} as Record<Caller, BootAuth>;
    const projectOf = {} as Record<Caller, string>;
    /** The demo project's server that show, list and the refused deletes aim at. */
    let target: BootResult;
    let seq = 0;

    const bootRequest = (caller: Caller) => ({
      requestId: `matrix-${caller}-${++seq}`,
      auth: auth[caller],
      name: `matrix-${caller}-${seq}`,
      flavor: 'm1.tiny',
      image: h.boot.imageId,
      // The shared public network: usable by every project, so only the policy tells the callers apart.
      networks: [h.boot.publicNetworkId],
    });
    const bootDemoServer = async () => h.run<BootResult>('create', bootRequest('member'));

    /** The client's request for an operation (client.ts builds the same shapes). */
    const requestFor = async (op: Operation, caller: Caller): Promise<[ClientOperation, unknown]> => {
      switch (op) {
        case 'create':
          return ['create', bootRequest(caller)];
        case 'show':
          return ['show', { auth: auth[caller], server: target.id }];
        case 'list':
          return ['list', { auth: auth[caller] }];
        case 'listAllProjects':
          return ['list', { auth: auth[caller], allProjects: true }];
        case 'delete': {
          // An allowed delete gets a server of its own; a refused one aims at the shared target.
          const id = MATRIX.delete[caller] === 'allowed' ? (await bootDemoServer()).id : target.id;
          return [
            'delete',
            { requestId: `matrix-delete-${caller}-${++seq}`, auth: auth[caller], instanceUuid: id },
          ];
        }
        case 'hypervisorList':
          return ['hypervisorList', { auth: auth[caller] }];
        case 'audit':
          return ['audit', { auth: auth[caller] }];
      }
    };

    before(async () => {
      h = await openSecurityHarness('sec-matrix');
      const { cloud, boot } = h;
      auth.admin = h.adminAuth();
      projectOf.admin = boot.admin.projectId;
      auth.member = h.demoAuth();
      projectOf.member = boot.demo.projectId;
      const reader = await addTenantUser(cloud, { username: 'rita', projectName: 'demo', role: 'reader' });
      auth.reader = h.credentials(reader.username, reader.password, 'demo');
      projectOf.reader = reader.projectId;
      // No role on demo: Keystone has no project-scoped token to give.
      const noRole = await addTenantUser(cloud, { username: 'nora', projectName: 'demo' });
      auth.noRole = h.credentials(noRole.username, noRole.password, 'demo');
      projectOf.noRole = noRole.projectId;
      const other = await addTenantUser(cloud, { username: 'oscar', projectName: 'other', role: 'member' });
      auth.otherMember = h.credentials(other.username, other.password, 'other');
      projectOf.otherMember = other.projectId;
      target = await bootDemoServer();
    }, HARNESS_TIMEOUT);
    after(async () => {
      await h?.close();
    }, HARNESS_TIMEOUT);

    test('the refused cells: each typed as the matrix says, and nothing anywhere changes', async () => {
      const before = await h.state();
      assert.deepEqual(before.leaks, []);
      const mismatches: string[] = [];
      for (const op of OPERATIONS) {
        for (const caller of CALLERS) {
          const expected = MATRIX[op][caller];
          if (expected === 'allowed') continue;
          const [operation, request] = await requestFor(op, caller);
          const got = await h.outcome(operation, request);
          if (got !== expected) mismatches.push(`${op} by ${caller}: expected ${expected}, got ${got}`);
        }
      }
      assert.deepEqual(mismatches, []);
      assertUnchanged(before, await h.state(), 'refused client operations');
      // The target is untouched: still ACTIVE in its own project.
      const server = await h.cloud.nova.getInstance(target.id);
      assert.equal(server.vmState, 'active');
    });

    test('the allowed cells: each succeeds, and sees or changes exactly its own project’s servers', async () => {
      const mismatches: string[] = [];
      const results = {} as Record<Operation, Partial<Record<Caller, unknown>>>;
      for (const op of OPERATIONS) {
        results[op] = {};
        for (const caller of CALLERS) {
          if (MATRIX[op][caller] !== 'allowed') continue;
          const [operation, request] = await requestFor(op, caller);
          try {
            results[op][caller] = await h.run(operation, request);
          } catch (err) {
            mismatches.push(`${op} by ${caller}: expected allowed, got ${(err as Error).message}`);
          }
        }
      }
      assert.deepEqual(mismatches, []);

      // create: the server belongs to the caller's project.
      for (const caller of CALLERS.filter((c) => MATRIX.create[c] === 'allowed')) {
        const server = results.create[caller] as BootResult;
        assert.equal(server.status, 'ACTIVE');
        assert.equal(
          (await h.cloud.nova.getInstance(server.id)).projectId,
          projectOf[caller],
          `create by ${caller}`,
        );
      }
      // show: the demo server, to its project's member and reader, and to admin.
      for (const caller of CALLERS.filter((c) => MATRIX.show[c] === 'allowed')) {
        assert.equal((results.show[caller] as ServerView).id, target.id, `show by ${caller}`);
      }
      // list: only the caller's own project's servers; --all-projects (admin): every project's.
      for (const caller of CALLERS.filter((c) => MATRIX.list[c] === 'allowed')) {
        const listed = results.list[caller] as ServerView[];
        assert.ok(
          listed.every((s) => s.projectId === projectOf[caller]),
          `list by ${caller} shows other projects`,
        );
        assert.equal(
          listed.some((s) => s.id === target.id),
          projectOf[caller] === projectOf.member,
          `list by ${caller}`,
        );
      }
      const all = results.listAllProjects.admin as ServerView[];
      const projects = new Set(all.map((s) => s.projectId));
      assert.ok(all.some((s) => s.id === target.id));
      for (const caller of ['admin', 'member', 'otherMember'] as const)
        assert.ok(projects.has(projectOf[caller]));
      // delete: gone, everything released.
      for (const caller of CALLERS.filter((c) => MATRIX.delete[c] === 'allowed')) {
        assert.equal((results.delete[caller] as DeleteResult).outcome, 'deleted', `delete by ${caller}`);
      }
      assert.deepEqual((results.hypervisorList.admin as HypervisorView[]).map((v) => v.host).sort(), [
        'compute1',
        'compute2',
        'compute3',
      ]);
      assert.deepEqual(results.audit.admin as LeakFinding[], []);
      assert.deepEqual((await h.state()).leaks, []);
    });
  },
);
