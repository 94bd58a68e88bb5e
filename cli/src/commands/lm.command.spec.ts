import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { requireSmollm2OrSkip, SMOLLM2_GGUF } from '../../../libs/lm/src/testing/smollm2';
import {
  STORIES260K_CHECKPOINT,
  STORIES260K_TOKENIZER,
  stories260kAvailable,
} from '../../../libs/lm/src/testing/stories260k';

const ROOT = resolve(__dirname, '../../..');

/** The CLI as a user runs it (`npm run cprec -- …`): a separate process, stdout captured byte for byte. */
function cprec(args: string[]): { stdout: string; stderr: string; status: number | null } {
  const r = spawnSync(
    process.execPath,
    ['-r', 'ts-node/register/transpile-only', '-r', 'tsconfig-paths/register', 'cli/src/main.ts', ...args],
    { cwd: ROOT, encoding: 'utf8', timeout: 120_000 },
  );
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

const smollm2 = requireSmollm2OrSkip();

describe('cprec lm generate', () => {
  (smollm2 ? it : it.skip)(
    '--model FILE.gguf prints only the generated text (SmolLM2, greedy)',
    () => {
      const r = cprec([
        'lm',
        'generate',
        '--model',
        SMOLLM2_GGUF,
        '--prompt',
        'The capital of France is',
        '--steps',
        '16',
        '--temperature',
        '0',
      ]);
      expect(r.stderr).not.toMatch(/Error/);
      expect(r.status).toBe(0);
      expect(r.stdout).toBe(' Paris.\n\nThe answer is: 2018-01');
    },
    120_000,
  );

  (stories260kAvailable() ? it : it.skip)(
    'the llama2.c form (--checkpoint/--tokenizer) keeps run.c semantics',
    () => {
      const r = cprec([
        'lm',
        'generate',
        '--checkpoint',
        STORIES260K_CHECKPOINT,
        '--tokenizer',
        STORIES260K_TOKENIZER,
        '--steps',
        '20',
        '--temperature',
        '0',
      ]);
      expect(r.status).toBe(0);
      expect(r.stdout.startsWith('Once upon a time, there was a little girl named Lily.')).toBe(true);
    },
    120_000,
  );

  it('refuses both or neither of --model and --checkpoint with a clear message', () => {
    const r = cprec(['lm', 'generate', '--prompt', 'x']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/either --model or --checkpoint/);
  }, 120_000);
});
