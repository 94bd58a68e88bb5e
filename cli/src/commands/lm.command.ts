import { Command, InvalidArgumentError } from 'commander';
import {
  BackendPreference,
  LlamaModel,
  loadCheckpoint,
  loadTokenizer,
  runLikeLlama2c,
  selectBackend,
} from '@cprec/lm';

function num(name: string, integer: boolean) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || (integer && !Number.isInteger(n)))
      throw new InvalidArgumentError(`${name} must be ${integer ? 'an integer' : 'a number'}`);
    return n;
  };
}

interface GenerateFlags {
  checkpoint: string;
  tokenizer: string;
  prompt?: string;
  steps: number;
  temperature: number;
  topp: number;
  seed?: number;
  backend: BackendPreference;
}

/**
 * `cprec lm generate`: llama2.c `run` semantics (steps count forward passes from BOS at position
 * 0, temperature 0 = greedy, stop when BOS is sampled) so stdout can be compared byte for byte with
 * llama2.c's output. Only the decoded text goes to stdout; the backend note goes to stderr.
 */
export function register(program: Command): void {
  const lm = program.command('lm').description('language model utilities (libs/lm)');
  lm.command('generate')
    .description('generate text from a llama2.c checkpoint, like llama2.c `run`')
    .requiredOption(
      '--checkpoint <path>',
      'llama2.c checkpoint (legacy v0 .bin) or Hugging Face checkpoint directory',
    )
    .requiredOption('--tokenizer <file>', 'llama2.c tokenizer.bin or Hugging Face tokenizer.json')
    .option('--prompt <text>', 'prompt text (forced tokens after BOS)')
    .option('--steps <n>', 'forward steps from BOS, 0 = model max sequence length', num('--steps', true), 256)
    .option('--temperature <t>', '0 = greedy', num('--temperature', false), 1)
    .option('--topp <p>', 'nucleus sampling threshold (as run.c -p)', num('--topp', false), 0.9)
    .option('--seed <s>', 'sampling seed (default: time)', num('--seed', true))
    .option('--backend <name>', 'auto | cpu | wasm | tensorflow', 'auto')
    .action(async (flags: GenerateFlags) => {
      const report = await selectBackend(flags.backend);
      process.stderr.write(`tfjs backend: ${report.backend} (${report.source})\n`);
      const weights = loadCheckpoint(flags.checkpoint);
      const tok = loadTokenizer(flags.tokenizer, weights.config.vocabSize);
      const model = new LlamaModel(weights);
      try {
        const bytes = runLikeLlama2c(model, tok, {
          prompt: flags.prompt,
          steps: flags.steps,
          temperature: flags.temperature,
          topP: flags.topp,
          seed: flags.seed,
        });
        process.stdout.write(bytes);
        if (process.stdout.isTTY) process.stdout.write('\n');
      } finally {
        model.dispose();
      }
    });
}
