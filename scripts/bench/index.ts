/**
 * `npm run bench` — how fast a boot is, how it scales, and how close it is to the floor, measured side by
 * side with baselines in the same run (see docs/benchmarks.md). `--quick` is the smoke run CI uses: the
 * same code on smaller sizes, checking that everything runs and every figure is produced, not how fast.
 *
 * `guests` (real QEMU guests beside the fake driver; root and the Debian packages of the real guests) is in
 * the full run, not in `--quick` unless asked for with `--only`.
 *
 * Prints tables and writes every figure, with the machine and versions, to bench-results/<timestamp>.json.
 */
import './quiet-logs';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { runApiBench, type ApiBenchResult } from './api';
import { runBootBench, type BootBenchResult } from './boot';
import { openTemporal, type TemporalTarget } from './boot-env';
import { runGuestBench, type GuestBenchResult } from './guests';
import { runImageBench, type ImageBenchResult } from './image';
import { machineInfo, versions } from './machine';
import { renderTables } from './report';
import { judgeGoals, type BenchParameters, type BenchResults } from './results';
import { runSchedulerBench, type SchedulerBenchResult } from './scheduler';

const BENCHES = ['scheduler', 'image', 'boot', 'api', 'guests'] as const;
/** What `--quick` runs when no --only is given: the control plane (the smoke run in npm test). */
const QUICK_BENCHES: readonly BenchName[] = ['scheduler', 'image', 'boot', 'api'];
type BenchName = (typeof BENCHES)[number];

interface CliOptions {
  quick: boolean;
  only?: string;
  dbUrl?: string;
  out: string;
  /** Overrides of the boot section's sizes (a focused run, e.g. against another server). */
  boots?: string;
  levels?: string;
  compensation?: string;
  guestBoots?: string;
  apiServers?: string;
  apiBoots?: string;
  apiConcurrency?: string;
  /** Boots (boot and api sections) started with eager workflow start, on the workers' connection. */
  eagerStart: boolean;
}

function counts(list: string | undefined, flag: string): number[] | undefined {
  if (list === undefined) return undefined;
  const values = list.split(',').map((v) => Number(v));
  if (values.some((v) => !Number.isInteger(v) || v < 1))
    throw new Error(`${flag} wants positive whole numbers separated by commas, got '${list}'`);
  return values;
}

function log(line: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

function parameters(options: CliOptions, only: BenchName[]): BenchParameters {
  const quick = options.quick;
  return {
    quick,
    only,
    schedulerSizes: quick ? [100, 1_000, 10_000] : [100, 1_000, 10_000, 100_000],
    schedulerDbs: ['sqlite', ...(options.dbUrl ? [options.dbUrl.replace(/\/\/[^@/]*@/, '//')] : [])],
    contention: { claimers: 64, hosts: quick ? 200 : 1_000 },
    imageMb: quick ? 32 : 256,
    sequentialBoots: counts(options.boots, '--boots')?.[0] ?? (quick ? 6 : 200),
    concurrency: counts(options.levels, '--levels') ?? (quick ? [1, 10] : [1, 10, 50, 200, 1_000]),
    compensation: counts(options.compensation, '--compensation') ?? (quick ? [1, 5] : [1, 200]),
    temporalAddress: process.env.TEMPORAL_ADDRESS || null,
    apiServers: counts(options.apiServers, '--api-servers')?.[0] ?? (quick ? 100 : 1_000),
    guestBoots: counts(options.guestBoots, '--guest-boots')?.[0] ?? (quick ? 2 : 10),
    eagerStart: options.eagerStart,
  };
}

export async function runBench(options: CliOptions): Promise<{ results: BenchResults; file: string }> {
  const asked = options.only ? options.only.split(',') : options.quick ? [...QUICK_BENCHES] : [...BENCHES];
  const only = asked.map((name) => {
    if (!(BENCHES as readonly string[]).includes(name)) throw new Error(`unknown benchmark '${name}'`);
    return name as BenchName;
  });
  const params = parameters(options, only);
  const started = new Date();
  const machine = machineInfo();
  log(
    `${machine.cpus} × ${machine.cpuModel}, load ${machine.loadAverage.join(' ')}; ${options.quick ? 'quick' : 'full'} run`,
  );

  mkdirSync(options.out, { recursive: true });
  const file = path.join(options.out, `${started.toISOString().replace(/[:.]/g, '-')}.json`);
  const scheduler: SchedulerBenchResult[] = [];
  let image: ImageBenchResult | null = null;
  let boot: BootBenchResult | null = null;
  let api: ApiBenchResult | null = null;
  let guests: GuestBenchResult | null = null;
  // Written after every section (complete: false until the end), so a long run that is stopped keeps
  // what it measured.
  const save = (complete: boolean): BenchResults => {
    const finished = new Date();
    // `guests` only when asked for: a results file has no null section it did not mean to run.
    const partial = { scheduler, image, boot, api, ...(only.includes('guests') ? { guests } : {}) };
    const results: BenchResults = {
      startedAt: started.toISOString(),
      finishedAt: finished.toISOString(),
      durationSeconds: Math.round((finished.getTime() - started.getTime()) / 1000),
      complete,
      machine,
      versions: versions(),
      parameters: params,
      ...partial,
      goals: judgeGoals(partial),
    };
    writeFileSync(file, JSON.stringify(results, null, 2) + '\n');
    return results;
  };

  if (only.includes('scheduler')) {
    for (const serverUrl of [undefined, ...(options.dbUrl ? [options.dbUrl] : [])]) {
      scheduler.push(
        await runSchedulerBench({
          sizes: params.schedulerSizes,
          decisions: () => (options.quick ? 40 : 200),
          naiveDecisions: (hosts) =>
            options.quick ? (hosts >= 10_000 ? 3 : 10) : Math.max(5, Math.min(100, 200_000 / hosts)),
          contention: params.contention,
          serverUrl,
          log,
        }),
      );
      save(false);
    }
  }
  if (only.includes('image')) {
    image = await runImageBench({ sizeMb: params.imageMb, trials: options.quick ? 3 : 5, log });
    save(false);
  }

  if (only.includes('boot')) {
    // A fresh dev server per phase in the full run; one for all in the smoke run, where time matters more.
    let shared: TemporalTarget | undefined;
    const eager = { eagerStart: options.eagerStart };
    const open = async (): Promise<TemporalTarget> => {
      if (!options.quick) return openTemporal(log, eager);
      shared ??= await openTemporal(log, eager);
      return { ...shared, close: async () => undefined };
    };
    try {
      boot = await runBootBench(open, {
        sequentialBoots: params.sequentialBoots,
        warmup: options.quick ? 2 : 10,
        concurrency: params.concurrency,
        minBootsPerLevel: options.quick ? 3 : 20,
        compensation: params.compensation,
        log,
        progress(partial) {
          boot = partial;
          save(false);
        },
      });
    } finally {
      await shared?.close();
    }
  }

  if (only.includes('api')) {
    api = await runApiBench({
      servers: params.apiServers ?? 1_000,
      samples: options.quick ? 5 : 50,
      boots: counts(options.apiBoots, '--api-boots')?.[0] ?? (options.quick ? 3 : 20),
      // The figure: boots/s through the API vs the client, and POST's answer, at 50 at once.
      concurrency: counts(options.apiConcurrency, '--api-concurrency')?.[0] ?? (options.quick ? 3 : 50),
      eagerStart: options.eagerStart,
      log,
    });
    save(false);
  }

  if (only.includes('guests')) {
    const temporal = await openTemporal(log);
    try {
      guests = await runGuestBench(temporal, { boots: params.guestBoots ?? 10, warmup: 1, log });
    } finally {
      await temporal.close();
    }
    save(false);
  }

  return { results: save(true), file };
}

async function main(): Promise<void> {
  const program = new Command()
    .name('bench')
    .description('bootflow benchmarks: scheduler, image path, boot latency and throughput, compute API')
    .option('--quick', 'smoke run: smaller sizes, fewer samples (CI)', false)
    .option('--only <list>', `comma-separated subset of ${BENCHES.join(',')}`)
    .option(
      '--db-url <url>',
      'also run the scheduler benchmark on this database server (e.g. mysql://root@127.0.0.1:3306)',
    )
    .option('--out <dir>', 'where the results JSON goes', 'bench-results')
    .option('--boots <n>', 'boot latency: rounds of sequential boots (default 200; 6 with --quick)')
    .option('--levels <list>', 'throughput: boots started at once per level (default 1,10,50,200,1000)')
    .option('--compensation <list>', 'compensation: failing boots at once per run (default 1,200)')
    .option(
      '--guest-boots <n>',
      'guests: boots per driver, fake and qemu alternating (default 10; 2 with --quick)',
    )
    .option(
      '--api-servers <n>',
      'compute API: servers behind GET /servers/detail (default 1000; 100 with --quick)',
    )
    .option('--api-boots <n>', 'compute API: POST /servers one at a time (default 20; 3 with --quick)')
    .option('--api-concurrency <n>', 'compute API: POST /servers at once (default 50; 3 with --quick)')
    .option(
      '--eager-start',
      'boot and api: start boots with eager workflow start, the client on the workers’ connection (as the ' +
        'API beside the controller role); without it the client has a connection of its own (as client.ts)',
      false,
    )
    .option('--render <file>', 'print the tables of an earlier results file, run nothing')
    .parse();
  const opts = program.opts<CliOptions & { render?: string }>();
  if (opts.render) {
    process.stdout.write(`${renderTables(JSON.parse(readFileSync(opts.render, 'utf8')) as BenchResults)}\n`);
    return;
  }
  const { results, file } = await runBench(opts);
  process.stdout.write(`${renderTables(results)}\n`);
  process.stdout.write(`results: ${file}\n`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(
      `bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  });
}
