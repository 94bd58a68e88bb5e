import { existsSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { atomicWrite, readJsonIfExists } from '../paper/io';
import { formatDuration } from '../paper/progress';
import { fullConfig, type ContinualConfig } from './config';
import type { Arm } from './plan';
import type { Summary, WindowEntry } from './summary';

const ARM_NAMES: Record<Arm, string> = {
  frozen: 'frozen (round 0 only)',
  continual: 'continual (trunk resumed each window)',
  retrain: 'full retrain from the base',
  sasrec: 'SASRec retrained',
};
const COLORS: Record<Arm, string> = {
  frozen: '#8892a3',
  continual: '#1f77b4',
  retrain: '#d62728',
  sasrec: '#2ca02c',
};
const ARMS: Arm[] = ['frozen', 'continual', 'retrain', 'sasrec'];

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
const f3 = (x: number | undefined): string => (x === undefined || Number.isNaN(x) ? '–' : x.toFixed(3));

export interface ChartSeries {
  name: string;
  color: string;
  /** [x, y, ci low, ci high] — the interval is drawn as an error bar when given. */
  points: Array<[number, number, number?, number?]>;
}

/**
 * A small SVG line chart over integer x (windows / rounds) with 95% error bars: static figures
 * for docs/, hand-written like bench/experiment/svg.ts.
 */
export function windowChartSvg(
  title: string,
  xLabel: string,
  yLabel: string,
  xTicks: ReadonlyArray<[number, string]>,
  series: readonly ChartSeries[],
  width = 820,
  height = 380,
  yFloor = 0.05,
): string {
  const legendRows = Math.ceil(series.length / 2);
  const pad = { left: 64, right: 24, top: 32, bottom: 58 + legendRows * 15 };
  const w = width - pad.left - pad.right;
  const h = height - pad.top - pad.bottom;
  const xs = xTicks.map(([x]) => x);
  const xMin = Math.min(...xs);
  const xMax = Math.max(...xs);
  const ys = series.flatMap((s) => s.points.flatMap((p) => [p[1], p[3] ?? p[1]]));
  const yMax = Math.max(yFloor, ...ys, 1e-9) * 1.1;
  const px = (x: number): number => pad.left + (xMax > xMin ? ((x - xMin) / (xMax - xMin)) * w : w / 2);
  const py = (y: number): number => pad.top + h - (y / yMax) * h;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="18" text-anchor="middle" font-size="13">${esc(title)}</text>`,
    `<line x1="${pad.left}" y1="${pad.top + h}" x2="${pad.left + w}" y2="${pad.top + h}" stroke="black"/>`,
    `<line x1="${pad.left}" y1="${pad.top}" x2="${pad.left}" y2="${pad.top + h}" stroke="black"/>`,
    `<text x="${pad.left + w / 2}" y="${pad.top + h + 32}" text-anchor="middle">${esc(xLabel)}</text>`,
    `<text x="16" y="${pad.top + h / 2}" text-anchor="middle" transform="rotate(-90 16 ${pad.top + h / 2})">${esc(yLabel)}</text>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const y = (yMax * i) / 4;
    out.push(
      `<line x1="${pad.left}" y1="${py(y)}" x2="${pad.left + w}" y2="${py(y)}" stroke="#eee"/>`,
      `<text x="${pad.left - 6}" y="${py(y) + 4}" text-anchor="end">${y === 0 ? '0' : y >= 0.01 && y < 1000 ? +y.toPrecision(3) : y.toExponential(1)}</text>`,
    );
  }
  for (const [x, label] of xTicks)
    out.push(`<text x="${px(x)}" y="${pad.top + h + 16}" text-anchor="middle">${esc(label)}</text>`);
  series.forEach((s, k) => {
    // Series side by side by a few pixels, so error bars at one x do not hide each other.
    const dx = (k - (series.length - 1) / 2) * 4;
    const pts = s.points.map((p) => `${px(p[0]) + dx},${py(p[1])}`).join(' ');
    if (s.points.length > 1)
      out.push(`<polyline points="${pts}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    for (const p of s.points) {
      const x = px(p[0]) + dx;
      if (p[2] !== undefined && p[3] !== undefined)
        out.push(
          `<line x1="${x}" y1="${py(p[2])}" x2="${x}" y2="${py(p[3])}" stroke="${s.color}" stroke-width="1"/>`,
        );
      out.push(`<circle cx="${x}" cy="${py(p[1])}" r="3" fill="${s.color}"/>`);
    }
    const lx = pad.left + (k % 2) * (w / 2);
    const ly = pad.top + h + 46 + Math.floor(k / 2) * 15;
    out.push(
      `<line x1="${lx}" y1="${ly - 4}" x2="${lx + 18}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"/>`,
      `<text x="${lx + 24}" y="${ly}">${esc(s.name)}</text>`,
    );
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

const byArm = <T extends { arm: Arm }>(entries: readonly T[], arm: Arm): T[] =>
  entries.filter((e) => e.arm === arm);

/**
 * docs/continual.md (or `outFile`) from the JSON results only: the windows, HR@1 per window and
 * arm with 95% intervals, the cost of each refresh, forgetting on window 1, three SVG figures, and
 * a reading written from the numbers. Without results it states what has not been run yet, the
 * command and the plan.
 */
export function writeContinualReport(
  resultsDir: string,
  outFile: string,
  log: (m: string) => void,
  planText?: string,
): void {
  const config = readJsonIfExists<ContinualConfig>(join(resultsDir, 'config.json')) ?? fullConfig();
  const summary = readJsonIfExists<Summary>(join(resultsDir, 'summary.json'));
  const data = readJsonIfExists<{
    users: number;
    windows: Array<{ index: number; label: string }>;
    stats: Array<{
      window: number;
      label: string;
      users: number;
      interactions: Record<string, number>;
      evaluable: Record<string, number>;
    }>;
  }>(join(resultsDir, 'data.json'));
  const figDir = join(dirname(outFile), 'continual');
  const figRel = (f: string): string => relative(dirname(outFile), join(figDir, f));
  const lines: string[] = [];
  const push = (...l: string[]) => lines.push(...l);
  const isSmoke = basename(config.base).startsWith('stories260K');

  push(
    '# Continual refresh: what it buys over a frozen model and over full retraining',
    '',
    `<!-- generated by \`npm run experiment:continual -- report\` from ${relative(dirname(outFile), resultsDir) || '.'}/*.json; edit bench/continual/report.ts, not this file -->`,
    '',
    'The question a platform asks before running continual pre-training in production: does a round',
    'that lets the trunk absorb the last window of the stream keep HR@1 up better — or more cheaply —',
    'than doing nothing or than retraining from scratch? (Monolith and Ekko answer it for their models;',
    'the CPRec paper does not ask it.)',
    '',
    '## Set-up',
    '',
    `- **Stream**: \`${config.source.folder}\` (${config.source.domains.join(', ')}), users active in ${config.minDomains}+ of these domains${config.maxUsers ? ` (a deterministic sample of ${config.maxUsers})` : ''}, in event-time order — what \`npm start\` streams.`,
    `- **Windows**: window 0 is the history before ${config.startDate}; then ${config.windows} windows of ${config.windowDays} days. Round *b* trains on windows 0..*b* and is evaluated on window *b*+1's users.`,
    `- **Cases**: per window and target domain (${config.targets.join(', ')}), ${config.casesPerDomain} users active in the window (a fixed seeded subset): their first item in the window is the target, the earlier items of the domain the history, with 19 negatives drawn once — the same frozen cases for every arm (checked by a key over users, candidates and targets).`,
    "- **Arms** (every LM arm: CPT under WSA with libs/training `runCptRound`, then LLaRA fine-tuning per target domain with `fineTune` from the CPT adapter, hybrid prompts over the round's SASRec item table — as the trainer's rounds do it):",
    `  - *frozen*: round 0 (warm-up + stable on ${config.cpt.initialSamples} history samples, annealing on mixed samples, fine-tuning), never refreshed;`,
    `  - *continual*: each round resumes the previous round's trunk; its stable phase absorbs ${config.cpt.samplesPerWindow} samples of the new window (+${Math.round(config.cpt.replayFraction * 100)}% replayed older ones), a branch is annealed (${config.cpt.annealSteps} steps on mixed samples so far) and fine-tuned on ${config.sft.samples} samples per domain;`,
    "  - *retrain*: each round starts from the base on all the windows' samples so far (the same samples continual saw, at once), annealed and fine-tuned on the same data as continual;",
    '  - *SASRec* retrained from scratch per round on every sequence so far.',
    `- **Metric**: HR@1 over 20 candidates by rank — exact likelihood of each candidate for the LMs (what the services’ gate and drift monitoring use), scores for SASRec — pooled over the target domains, with 95% Wilson intervals over users${config.eval.generation ? '; generation HR@1 and Valid Ratio beside it' : ''}.`,
    "- **Cost of freshness**: tokens trained on (CPT tokens as counted by the trainer + fine-tuning prompt tokens) and wall/CPU seconds to produce each arm's model at each round (the SASRec fit the hybrid prompts need included).",
    "- **Forgetting**: HR@1 of each arm's round-*b* model on window 1's users (seen in training from round 1 on).",
    `- **Base model**: \`${basename(config.base)}\`. Command: \`npm run experiment:continual\` (resumable: kill it and start it again).`,
    '',
  );

  if (data) {
    push(
      '## The stream',
      '',
      `${data.users.toLocaleString('en')} users.`,
      '',
      '| window | span | users | interactions | evaluable users per domain |',
      '| ---: | --- | ---: | --- | --- |',
    );
    for (const s of data.stats)
      push(
        `| ${s.window} | ${s.label} | ${s.users} | ${Object.entries(s.interactions)
          .map(([d, n]) => `${d} ${n}`)
          .join(', ')} | ${
          Object.entries(s.evaluable)
            .map(([d, n]) => `${d} ${n}`)
            .join(', ') || '–'
        } |`,
      );
    push('');
  }

  if (!summary || summary.windows.length === 0) {
    push(
      '## Results',
      '',
      '**Not run yet.** The full run is long on 2 cores; start it at low priority and come back:',
      '',
      '```bash',
      'nohup nice -n 10 npm run experiment:continual > .cprec/continual/full.log 2>&1 &',
      'npm run experiment:continual -- plan     # the stages and what they cost',
      'npm run experiment:continual -- report   # this page, from bench/results/continual/*.json',
      '```',
      '',
      'Rows, cost records and `summary.json` land in `bench/results/continual/` as the stages finish',
      '(`summary.json`: `windows[]` with `window`, `arm` (frozen | continual | retrain | sasrec), `hr1`,',
      '`hr1_ci95`, `tokens`, `wall_s`, plus `cpu_s`, per-domain HR@1 and users; `forgetting[]`;',
      '`costs[]`), so a partial run already reports. The machinery is checked by',
      '`npm run experiment:continual -- --preset smoke` (stories260K, 400 users, 3 windows, about a',
      'minute; its page: `npm run experiment:continual -- report --preset smoke` →',
      '`.cprec/continual/smoke/continual.md`) and by the specs in `bench/continual/continual.spec.ts`.',
      '',
    );
    if (planText) push('### What it costs', '', '```', planText.trimEnd(), '```', '');
    atomicWrite(outFile, lines.join('\n'));
    log(`wrote ${outFile} (no results yet)`);
    return;
  }

  if (isSmoke)
    push(
      '> **Machinery check only**: this run used stories260K on a handful of users and samples. Its numbers',
      '> say nothing about continual refresh; they show that every stage runs, resumes and reports.',
      '',
    );
  push(
    `## Results (${summary.rows_done}/${summary.rows_planned} rows${summary.complete ? '' : ', run in progress'})`,
    '',
    `![HR@1 per window](${figRel('hr1.svg')})`,
    '',
    '| window | span | arm | HR@1 | 95% CI | users | per domain | tokens | wall | CPU |',
    '| ---: | --- | --- | ---: | --- | ---: | --- | ---: | ---: | ---: |',
  );
  for (const e of summary.windows)
    push(
      `| ${e.window} | ${e.label} | ${e.arm} | ${f3(e.hr1)} | [${f3(e.hr1_ci95[0])}, ${f3(e.hr1_ci95[1])}] | ${e.users} | ${Object.entries(
        e.per_domain,
      )
        .map(([d, v]) => `${d} ${f3(v.hr1)}`)
        .join(
          ', ',
        )} | ${e.tokens.toLocaleString('en')} | ${formatDuration(e.wall_s)} | ${formatDuration(e.cpu_s)} |`,
    );
  push('', `![cost per round](${figRel('cost.svg')})`, '', `![forgetting](${figRel('forgetting.svg')})`, '');
  push(
    "### Forgetting: HR@1 on window 1's users by round",
    '',
    '| round | arm | HR@1 | 95% CI | users |',
    '| ---: | --- | ---: | --- | ---: |',
  );
  for (const e of summary.forgetting)
    push(
      `| ${e.boundary} | ${e.arm} | ${f3(e.hr1)} | [${f3(e.hr1_ci95[0])}, ${f3(e.hr1_ci95[1])}] | ${e.users} |`,
    );
  push('', '## Reading', '', ...reading(summary), '');

  const windows = [...new Set(summary.windows.map((e) => e.window))].sort((a, b) => a - b);
  const ticks = windows.map((v) => [v, `w${v}`] as [number, string]);
  const series = (
    entries: readonly WindowEntry[],
    value: (e: WindowEntry) => number,
    ci: boolean,
  ): ChartSeries[] =>
    ARMS.map((arm) => ({
      name: ARM_NAMES[arm],
      color: COLORS[arm],
      points: byArm(entries, arm).map((e) =>
        ci
          ? ([e.window, value(e), e.hr1_ci95[0], e.hr1_ci95[1]] as [number, number, number, number])
          : ([e.window, value(e)] as [number, number]),
      ),
    })).filter((s) => s.points.length > 0);
  atomicWrite(
    join(figDir, 'hr1.svg'),
    windowChartSvg(
      "HR@1 on the next window's users (95% CI)",
      'evaluated window',
      'HR@1',
      ticks,
      series(summary.windows, (e) => e.hr1, true),
    ),
  );
  atomicWrite(
    join(figDir, 'cost.svg'),
    windowChartSvg(
      'Cost of the model evaluated on each window (CPU hours to train it)',
      'evaluated window',
      'CPU hours',
      ticks,
      series(summary.windows, (e) => e.cpu_s / 3600, false),
      820,
      380,
      0,
    ),
  );
  const rounds = [...new Set(summary.forgetting.map((e) => e.boundary))].sort((a, b) => a - b);
  atomicWrite(
    join(figDir, 'forgetting.svg'),
    windowChartSvg(
      "Forgetting: HR@1 on window 1's users (95% CI)",
      'round (trained on windows 0..b)',
      'HR@1',
      rounds.map((b) => [b, `b${b}`] as [number, string]),
      ARMS.map((arm) => ({
        name: ARM_NAMES[arm],
        color: COLORS[arm],
        points: byArm(summary.forgetting as WindowEntry[], arm).map(
          (e) => [e.boundary, e.hr1, e.hr1_ci95[0], e.hr1_ci95[1]] as [number, number, number, number],
        ),
      })).filter((s) => s.points.length > 0),
    ),
  );
  atomicWrite(outFile, lines.join('\n'));
  log(`wrote ${outFile} and ${figDir}/*.svg`);
}

/** A reading of the numbers that claims no more than the intervals allow. */
export function reading(summary: Summary): string[] {
  const out: string[] = [];
  const windows = [...new Set(summary.windows.map((e) => e.window))].sort((a, b) => a - b);
  const later = windows.filter((v) => v > 1);
  const get = (arm: Arm, v: number) => summary.windows.find((e) => e.arm === arm && e.window === v);
  const overlap = (a: WindowEntry, b: WindowEntry) =>
    a.hr1_ci95[0] <= b.hr1_ci95[1] && b.hr1_ci95[0] <= a.hr1_ci95[1];
  const compare = (x: Arm, y: Arm): string | null => {
    const pairs = later
      .map((v) => [get(x, v), get(y, v)] as const)
      .filter((p): p is [WindowEntry, WindowEntry] => !!p[0] && !!p[1]);
    if (pairs.length === 0) return null;
    const better = pairs.filter(([a, b]) => a.hr1 > b.hr1).length;
    const separated = pairs.filter(([a, b]) => !overlap(a, b));
    const meanDiff = pairs.reduce((s, [a, b]) => s + a.hr1 - b.hr1, 0) / pairs.length;
    return `- ${x} vs ${y}: higher HR@1 on ${better} of ${pairs.length} windows after the first, mean difference ${meanDiff >= 0 ? '+' : ''}${meanDiff.toFixed(3)}; the 95% intervals ${separated.length === 0 ? 'overlap on every window — no difference is established at this size' : `separate on ${separated.length} window(s) (${separated.map(([a]) => `w${a.window}`).join(', ')})`}.`;
  };
  for (const [x, y] of [
    ['continual', 'frozen'],
    ['continual', 'retrain'],
    ['continual', 'sasrec'],
  ] as const) {
    const line = compare(x, y);
    if (line) out.push(line);
  }
  const cost = (arm: Arm) =>
    summary.windows.filter((e) => e.arm === arm && e.window > 1).reduce((s, e) => s + e.cpu_s, 0);
  const tokens = (arm: Arm) =>
    summary.windows.filter((e) => e.arm === arm && e.window > 1).reduce((s, e) => s + e.tokens, 0);
  if (cost('retrain') > 0 && cost('continual') > 0)
    out.push(
      `- Refreshing after the first window cost continual ${tokens('continual').toLocaleString('en')} tokens / ${formatDuration(cost('continual'))} CPU in all, full retraining ${tokens('retrain').toLocaleString('en')} tokens / ${formatDuration(cost('retrain'))} CPU (×${(cost('retrain') / cost('continual')).toFixed(1)}); retraining grows with every window, a continual round does not.`,
    );
  const f = (arm: Arm) =>
    summary.forgetting.filter((e) => e.arm === arm).sort((a, b) => a.boundary - b.boundary);
  const cont = f('continual');
  if (cont.length >= 2)
    out.push(
      `- Window 1's users: continual HR@1 ${cont.map((e) => f3(e.hr1)).join(' → ')} over rounds ${cont.map((e) => e.boundary).join(', ')}${cont.at(-1)!.hr1 < cont[1]!.hr1 && !overlap(cont.at(-1)! as WindowEntry, cont[1]! as WindowEntry) ? ': it drops below its value right after absorbing them (forgetting)' : ': no drop beyond the intervals (no forgetting shown at this size)'}.`,
    );
  if (out.length === 0) out.push('- Not enough windows evaluated yet for a comparison.');
  out.push(
    '- Caveats: one seed, one data order; HR@1 by likelihood ranking (the LLaRA generation HR@1 needs `eval.generation`); the fine-tuning data of every LM arm at a round is the same draw, so arms differ only in CPT.',
  );
  return out;
}

export function reportExists(resultsDir: string): boolean {
  return existsSync(join(resultsDir, 'summary.json'));
}
