// `npm run chaos -- [--quick] [--only NAME,...] [--no-report]`: every chaos scenario against a
// live mesh in network namespaces, the figures written to docs/reliability.md. Exits 1 if any
// scenario broke a promise (a byte lost, a reset one end never heard of, a hang).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ChaosMesh } from './mesh.js';
import { writeSection } from './report-file.js';
import { chaosMarkdown } from './report.js';
import type { ScenarioResult } from './runner.js';
import { runScenario } from './runner.js';
import { SCENARIOS } from './scenarios.js';

const USAGE = `Usage: npm run chaos -- [--quick] [--only NAME,...] [--no-report] [--logs DIR]
  --quick       one fault per scenario, short traffic, zone a only (no gateways)
  --only NAMES  run only these scenarios: ${SCENARIOS.map((s) => s.name).join(', ')}
  --no-report   do not rewrite docs/reliability.md
  --logs DIR    write every process's output into DIR (one directory per mesh) when its mesh stops;
                TRELLIS_LOG_LEVEL (default warn) sets the trellis processes' log level`;

function parse(): { quick: boolean; only: string[] | undefined; report: boolean; logs: string | undefined } {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' }, only: { type: 'string' }, 'no-report': { type: 'boolean' }, logs: { type: 'string' }, help: { type: 'boolean' } } });
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const only = values.only?.split(',').filter((name) => name !== '');
  for (const name of only ?? []) {
    if (!SCENARIOS.some((scenario) => scenario.name === name)) throw new Error(`chaos: no scenario ${JSON.stringify(name)}\n${USAGE}`);
  }
  return { quick: values.quick === true, only, report: values['no-report'] !== true, logs: values.logs };
}

/** Facts about the machine that shape what a scenario can do. */
function environment(): string[] {
  const facts = [`node ${process.version}, ${process.arch}`];
  const probe = spawnSync('sh', ['-c', 'ip netns add trchaosprobe && ip netns exec trchaosprobe tc qdisc add dev lo root netem delay 1ms; r=$?; ip netns del trchaosprobe; exit $r'], { encoding: 'utf8' });
  facts.push(probe.status === 0 ? 'tc netem available' : `tc netem is not in this kernel (${probe.stderr.trim().split('\n')[0] ?? ''}): reordering and delay come from an HTB slow class, loss from the iptables statistic match`);
  return facts;
}

async function main(): Promise<void> {
  const { quick, only, report, logs } = parse();
  const startedAt = new Date();
  const withGateways = !quick;
  const scenarios = SCENARIOS.filter((scenario) => (only === undefined || only.includes(scenario.name)) && (withGateways || !scenario.needsGateways));
  const env = environment();
  process.stdout.write(`chaos: ${scenarios.length} scenarios, ${quick ? 'quick' : 'full'}\n`);
  const results: ScenarioResult[] = [];
  // One mesh per shape (one control plane, replicas on etcd, a fake clock), in the order the scenarios come.
  const shapes = [...new Map(scenarios.map((scenario) => [JSON.stringify(scenario.mesh ?? {}), scenario.mesh ?? {}])).entries()];
  for (const [index, [key, shape]] of shapes.entries()) {
    process.stdout.write(`chaos: starting the mesh ${key}\n`);
    const logDir = logs === undefined ? undefined : join(logs, `mesh-${index + 1}`);
    const mesh = await ChaosMesh.start({ gateways: withGateways, ...shape, logDir });
    try {
      for (const scenario of scenarios.filter((entry) => JSON.stringify(entry.mesh ?? {}) === key)) {
        process.stdout.write(`chaos: ${scenario.name} …\n`);
        const result = await runScenario(mesh, scenario, quick);
        results.push(result);
        const t = result.tally;
        process.stdout.write(`chaos: ${scenario.name}: ${t.streams} streams, ${JSON.stringify(t.byVerdict)}, ${t.bytesLost} bytes lost, recovery ${JSON.stringify(result.recoveryMs)} ms, ${result.problems.length === 0 ? 'pass' : 'FAIL'}\n`);
        for (const note of result.notes) process.stdout.write(`  ${note}\n`);
        for (const problem of result.problems) process.stdout.write(`  problem: ${problem}\n`);
      }
    } finally {
      await mesh.stop();
    }
  }
  const args = process.argv.slice(2).join(' ');
  const command = `npm run chaos${args === '' ? '' : ` -- ${args}`}`;
  if (report) {
    writeSection('chaos', chaosMarkdown(results, { command, startedAt, wallMs: Date.now() - startedAt.getTime(), environment: env }));
    process.stdout.write('chaos: wrote docs/reliability.md\n');
  }
  const failed = results.filter((result) => result.problems.length > 0);
  process.stdout.write(`chaos: ${results.length - failed.length} passed, ${failed.length} failed\n`);
  process.exitCode = failed.length === 0 ? 0 : 1;
}

// Ctrl-C or a kill: exit through process.exit so that the 'exit' hooks remove the namespaces and the tmpfs.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(2);
});
