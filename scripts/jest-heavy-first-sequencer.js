// Jest test sequencer for the unit project: the known-slow suites first, in this order, then
// everything else in Jest's default order (failed last time first, then slowest by the perf cache,
// then largest file). Why: on a fresh clone (CI) Jest has no perf cache and orders by file size,
// which started the CPT-vs-SFT experiment (a short file, minutes of work) 43rd and left one worker
// idle for minutes at the end. @jest/test-sequencer is Jest's own (a dependency of jest-config).
const path = require('node:path');
const { default: DefaultSequencer } = require('@jest/test-sequencer');

/** Repository-relative paths, heaviest first (measured; see the unit-tier timing notes). */
const HEAVY_FIRST = [
  'libs/training/src/experiment/cpt-vs-sft.spec.ts',
  'libs/sasrec/src/gru4rec.spec.ts',
  'libs/lm/src/kernels/native-kernels.spec.ts',
  'libs/training/src/sft/fine-tune.spec.ts',
  'libs/sasrec/src/sasrec.spec.ts',
  'libs/training/src/cpt/cpt-round.spec.ts',
];

class HeavyFirstSequencer extends DefaultSequencer {
  sort(tests) {
    const rank = (test) => {
      const relative = path.relative(test.context.config.rootDir, test.path).split(path.sep).join('/');
      const i = HEAVY_FIRST.indexOf(relative);
      return i === -1 ? HEAVY_FIRST.length : i;
    };
    const rest = super.sort(tests.filter((t) => rank(t) === HEAVY_FIRST.length));
    const heavy = tests.filter((t) => rank(t) < HEAVY_FIRST.length).sort((a, b) => rank(a) - rank(b));
    return [...heavy, ...rest];
  }
}

module.exports = HeavyFirstSequencer;
