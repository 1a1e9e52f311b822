/**
 * The Temporal Web UI, checked in a real browser (Debian's chromium driven by playwright-core): a dev server
 * with the UI and the codec server, a worker process with every role, one boot that succeeds and one that
 * fails (an injected hypervisor fault), both started with client.ts. Each workflow's page must show what a
 * user needs: completed or failed with the fault message, the activity steps in order, and the search
 * attributes (host, project). Screenshots go to test-results/; BOOTFLOW_UPDATE_DOCS=1 (or a missing file)
 * refreshes the README's docs/web-ui-boot*.png from these pages.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import pino from 'pino';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { FaultInjector } from '../cloud/compute/faults';
import { hostDirOf } from '../cloud/index';
import { loadCodecToken, startCodecServer, type RunningCodecServer } from '../lib/codec';
import { waitForComputeHosts } from '../lib/command-line/compute-services';
import { bootflowDataConverter, loadKeyringOrExplain } from '../lib/command-line/temporal';
import { reservePorts, startDevServer, type PortReservation, type RunningDevServer } from '../lib/dev-server';
import { PROJECT_ROOT } from '../lib/temporal-binaries';
import { prepareDataDir, type PreparedData } from '../scripts/bootstrap';
import { BOOT_SEARCH_ATTRIBUTES } from '../workflows/search-attributes';
import type { ServerView } from '../workflows/operator-types';
import {
  deploymentEnv,
  parseJson,
  runClient,
  startScript,
  stopChild,
  workerReady,
  type ChildHandle,
} from './helpers/deployment';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const HOSTS = ['compute1', 'compute2', 'compute3'];
const RESULTS = path.join(PROJECT_ROOT, 'test-results');
const DOCS_SCREENSHOT = path.join(PROJECT_ROOT, 'docs', 'web-ui-boot.png');
const DOCS_FAILED_SCREENSHOT = path.join(PROJECT_ROOT, 'docs', 'web-ui-boot-failed.png');
const FAULT = 'Injected fault: the hypervisor refused to start the guest';
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

type CreatedServer = ServerView & { workflowId: string; webUi: string };

/** The activity types of the compact event history's rows ("Activity Type  spawn  Summary ..."), in order. */
async function historyActivities(page: Page): Promise<string[]> {
  const text = await page.locator('main').innerText();
  return [...text.matchAll(/Activity Type\s+(\w+)/g)].map((m) => m[1] as string);
}

/** The README's screenshots come from this test: refreshed with BOOTFLOW_UPDATE_DOCS=1, or made when missing. */
function keepForDocs(screenshot: string, target: string): void {
  if (process.env.BOOTFLOW_UPDATE_DOCS !== '1' && existsSync(target)) return;
  mkdirSync(path.dirname(target), { recursive: true });
  copyFileSync(screenshot, target);
}

function assertInOrder(seen: string[], expected: string[]): void {
  let from = 0;
  for (const step of expected) {
    const at = seen.indexOf(step, from);
    assert.ok(at >= 0, `${step} after ${expected[expected.indexOf(step) - 1]} in ${seen.join(', ')}`);
    from = at + 1;
  }
}

/** Secrets the codec decrypts for the UI (the caller's Keystone token) never go into a screenshot. */
function secrets(page: Page) {
  return [page.locator('.cm-line').filter({ hasText: /"(password|token|grant)"\s*:/ })];
}

/**
 * A workflow's page as a user reads it: the status badge, the input decrypted through the codec server, and
 * the event history in its compact form (one row per activity), oldest first.
 */
async function openWorkflow(
  page: Page,
  url: string,
  status: 'Completed' | 'Failed',
  name: string,
): Promise<void> {
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  // The badge's text is "Completed"/"Failed", upper-cased by CSS.
  await page
    .getByText(new RegExp(`^${status}$`, 'i'))
    .first()
    .waitFor({ timeout: 60_000 });
  await page.getByText(`"name": "${name}"`).first().waitFor({ timeout: 60_000 });
  await page.getByText('Event History').first().click();
  await page.getByText('Compact', { exact: true }).first().click();
  await page
    .getByRole('button', { name: /Descending/ })
    .first()
    .click();
  await page
    .getByRole('button', { name: /Ascending/ })
    .first()
    .waitFor({ timeout: 30_000 });
  await page.getByText('keystone: authenticate', { exact: true }).first().waitFor({ timeout: 30_000 });
}

async function searchAttributes(page: Page): Promise<string> {
  await page.getByText('Search Attributes', { exact: true }).first().click();
  await page.waitForURL(/\/search-attributes/, { timeout: 30_000 });
  await page.getByText('"ComputeHost"').first().waitFor({ timeout: 30_000 });
  return page.locator('main').innerText();
}

describe('the Web UI shows a completed and a failed boot', () => {
  let dataDir: string;
  let prepared: PreparedData;
  let codec: RunningCodecServer;
  let server: RunningDevServer;
  let worker: ChildHandle;
  let context: BrowserContext;
  let browserDir: string;
  let ok: CreatedServer;
  let okHost: string;
  let codecToken: string;
  let codecEndpoint: string;
  let failed: CreatedServer;
  let reserved: PortReservation | undefined;

  before(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`no browser at ${CHROMIUM}: apt-get install chromium, or set CHROMIUM_PATH`);
    }
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'bootflow-ui-'));
    browserDir = mkdtempSync(path.join(os.tmpdir(), 'bootflow-chromium-'));
    mkdirSync(RESULTS, { recursive: true });
    // Held while the codec server takes a port of its own, so it cannot be handed one of these.
    reserved = await reservePorts(3);
    const [port, uiPort, apiPort] = reserved.ports as [number, number, number];
    // The api role's port, for the worker and for the openrc files' OS_AUTH_URL alike: the client gets its
    // token from this cloud's Keystone, never from a demo's on the default port.
    const apiEnv = { BOOTFLOW_API_PORT: String(apiPort) };
    prepared = await prepareDataDir(dataDir, deploymentEnv({ BOOTFLOW_DATA: dataDir, ...apiEnv }));
    const keyring = loadKeyringOrExplain(dataDir);
    codecToken = loadCodecToken(dataDir);
    codec = await startCodecServer({
      keyring,
      bearerToken: codecToken,
      allowedOrigins: [`http://localhost:${uiPort}`, `http://127.0.0.1:${uiPort}`],
      uiUrl: `http://localhost:${uiPort}/namespaces/default/workflows`,
      logger: pino({ level: 'warn' }),
    });
    // The browser reaches the codec server on the Web UI's host, so its SameSite=Strict cookie is sent.
    codecEndpoint = `http://localhost:${codec.port}`;
    await reserved.release();
    server = await startDevServer({
      dataDir,
      port,
      uiPort,
      searchAttributes: BOOT_SEARCH_ATTRIBUTES,
      uiCodecEndpoint: codecEndpoint,
      output: { file: path.join(dataDir, 'temporal.log') },
    });
    const env = deploymentEnv({
      BOOTFLOW_DATA: dataDir,
      TEMPORAL_ADDRESS: server.address,
      BOOTFLOW_UI_URL: `http://localhost:${uiPort}`,
      ...apiEnv,
    });
    worker = startScript(
      'worker.ts',
      ['--role', 'controller,network,compute,api'],
      env,
      path.join(dataDir, 'worker.log'),
      {
        ipc: true,
      },
    );
    await workerReady(worker);
    const connection = await Connection.connect({ address: server.address });
    try {
      const client = new Client({ connection, dataConverter: bootflowDataConverter(keyring) });
      await waitForComputeHosts(client, HOSTS, 60_000);
    } finally {
      await connection.close();
    }

    const create = ['-f', 'json', 'server', 'create', '--flavor', 'm1.tiny', '--image', 'cirros'];
    const good = await runClient([...create, '--network', 'private', '--wait', 'ui-boots'], env);
    assert.equal(good.code, 0, good.stderr);
    ok = parseJson<CreatedServer>(good, 'create ui-boots');
    // OS-EXT-SRV-ATTR:host is admin-only: the host the boot went to, as an admin sees it.
    const shown = await runClient(['-f', 'json', 'server', 'show', '--all-projects', ok.id], env);
    okHost = parseJson<ServerView>(shown, 'show ui-boots').host ?? '';
    assert.match(okHost, /^compute[123]$/);

    // Every host's hypervisor refuses the next guest: Nova aborts the build (no reschedule) with this fault.
    for (const host of HOSTS) {
      await new FaultInjector(hostDirOf(dataDir, host), host).set('spawn', {
        mode: 'fail',
        errorType: 'BuildAbortException',
        message: FAULT,
        times: 1,
      });
    }
    const bad = await runClient([...create, '--network', 'private', '--wait', 'ui-fails'], env);
    for (const host of HOSTS) await new FaultInjector(hostDirOf(dataDir, host), host).clear();
    assert.equal(bad.code, 1, bad.stderr);
    failed = parseJson<CreatedServer>(bad, 'create ui-fails');
    assert.equal(failed.status, 'ERROR');
    assert.equal(failed.fault?.message, FAULT);

    context = await chromium.launchPersistentContext(browserDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_FLAGS,
      viewport: { width: 1600, height: 1500 },
    });
    // The Web UI sends the codec server's cookie only with "Include cross-origin credentials" on: the
    // browser-side Codec Server setting (what Settings > Codec Server stores), as a person would tick it.
    const settings = {
      endpoint: codecEndpoint,
      includeCredentials: true,
      overrideRemoteCodecConfiguration: true,
    };
    await context.addInitScript({
      content: `for (const [k, v] of Object.entries(${JSON.stringify(settings)})) localStorage.setItem(k, JSON.stringify(v));`,
    });
    // The link the demo prints: the token becomes the codec server's HttpOnly cookie, then on to the UI.
    const login = await context.newPage();
    await login.goto(`${codecEndpoint}/login?token=${encodeURIComponent(codecToken)}`);
    assert.match(login.url(), /\/namespaces\/default\/workflows/);
    await login.close();
  });

  after(async () => {
    await reserved?.release();
    await context?.close().catch(() => undefined);
    if (worker) await stopChild(worker, 'SIGTERM', 20_000);
    await server?.stop();
    await codec?.close().catch(() => undefined);
    for (const dir of [dataDir, browserDir]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a completed boot: Completed, its steps in order, host and project as search attributes', async () => {
    const page = await context.newPage();
    await openWorkflow(page, ok.webUi, 'Completed', 'ui-boots');
    await page
      .getByText('nova-conductor: vm_state=active', { exact: true })
      .first()
      .waitFor({ timeout: 30_000 });
    assertInOrder(await historyActivities(page), [
      'authenticate',
      'authorize',
      'validateBootRequest',
      'reserveQuota',
      'createInstanceRecord',
      'selectDestinations',
      'createPorts',
      'spawn',
      'finishBuild',
    ]);
    // The result, decrypted for the page, names the server's host and address.
    await page.getByText(`"host": "${okHost}"`).first().waitFor({ timeout: 30_000 });
    const overview = path.join(RESULTS, 'web-ui-boot-completed.png');
    await page.screenshot({ path: overview, mask: secrets(page) });
    keepForDocs(overview, DOCS_SCREENSHOT);

    const attributes = await searchAttributes(page);
    assert.match(attributes, new RegExp(`"ComputeHost": "${okHost}"`));
    assert.match(attributes, new RegExp(`"ProjectId": "${prepared.cloud.demo.projectId}"`));
    assert.match(attributes, new RegExp(`"InstanceId": "${ok.id}"`));
    assert.match(attributes, /"VmState": "active"/);
    await page.screenshot({ path: path.join(RESULTS, 'web-ui-boot-completed-search-attributes.png') });
    await page.close();
  });

  test('a failed boot: Failed with the fault message, the undo steps after the failing spawn', async () => {
    const page = await context.newPage();
    await openWorkflow(page, failed.webUi, 'Failed', 'ui-fails');
    // The failure is encrypted in the history; the codec server decrypts it for the page.
    await page.getByText(FAULT).first().waitFor({ timeout: 30_000 });
    await page
      .getByText('nova-conductor: instance fault, vm_state=error', { exact: true })
      .first()
      .waitFor({ timeout: 30_000 });
    const steps = await historyActivities(page);
    assertInOrder(steps, [
      'authenticate',
      'validateBootRequest',
      'createInstanceRecord',
      'selectDestinations',
      'spawn',
      'destroyInstance',
      'deleteInstancePorts',
      'releaseQuota',
      'failBuild',
    ]);
    assert.ok(!steps.includes('finishBuild'), 'a failed boot never marks the server active');
    const overview = path.join(RESULTS, 'web-ui-boot-failed.png');
    await page.screenshot({ path: overview, mask: secrets(page) });
    keepForDocs(overview, DOCS_FAILED_SCREENSHOT);

    const attributes = await searchAttributes(page);
    assert.match(attributes, /"ComputeHost": "compute\d"/);
    assert.match(attributes, new RegExp(`"ProjectId": "${prepared.cloud.demo.projectId}"`));
    assert.match(attributes, new RegExp(`"InstanceId": "${failed.id}"`));
    assert.match(attributes, /"VmState": "error"/);
    await page.screenshot({ path: path.join(RESULTS, 'web-ui-boot-failed-search-attributes.png') });
    await page.close();
  });
});
