import { Command, InvalidArgumentError } from 'commander';
import {
  BackendPreference,
  generate,
  LlamaModel,
  loadBaseModel,
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
  model?: string;
  checkpoint?: string;
  tokenizer?: string;
  prompt?: string;
  steps: number;
  temperature: number;
  topp: number;
  seed?: number;
  backend: BackendPreference;
}

/**
 * `cprec lm generate` in two forms. Only the generated text goes to stdout; notes go to stderr.
 * - `--model PATH` (a GGUF file, a Hugging Face folder, or a llama2.c `.bin` with `--tokenizer`
 *   when it is not beside it): the prompt is encoded as the model's tokenizer says (BOS only where
 *   its metadata asks for it), `--steps` new tokens are generated, generation stops at EOS, and
 *   only the new tokens' text is printed — llama.cpp's / transformers' `generate` semantics.
 * - `--checkpoint FILE --tokenizer FILE`: llama2.c `run` semantics (steps count forward passes
 *   from BOS at position 0, the prompt is echoed, stop when BOS is sampled), so stdout can be
 *   compared byte for byte with llama2.c's output.
 */
export function register(program: Command): void {
  const lm = program.command('lm').description('language model utilities (libs/lm)');
  lm.command('generate')
    .description('generate text from a base model (GGUF, Hugging Face folder or llama2.c checkpoint)')
    .option('--model <path>', 'base model: .gguf file, Hugging Face folder, or llama2.c .bin')
    .option(
      '--checkpoint <path>',
      'llama2.c checkpoint (legacy v0 .bin) or Hugging Face checkpoint directory (llama2.c `run` form)',
    )
    .option('--tokenizer <file>', 'llama2.c tokenizer.bin or Hugging Face tokenizer.json')
    .option('--prompt <text>', 'prompt text (forced tokens after BOS)')
    .option(
      '--steps <n>',
      'with --model: new tokens; with --checkpoint: forward steps from BOS (0 = max sequence length)',
      num('--steps', true),
      256,
    )
    .option('--temperature <t>', '0 = greedy', num('--temperature', false), 1)
    .option('--topp <p>', 'nucleus sampling threshold (as run.c -p)', num('--topp', false), 0.9)
    .option('--seed <s>', 'sampling seed (default: time)', num('--seed', true))
    .option('--backend <name>', 'auto | cpu | wasm | tensorflow', 'auto')
    .action(async (flags: GenerateFlags) => {
      if (!flags.model === !flags.checkpoint)
        throw new InvalidArgumentError('name the model with either --model or --checkpoint (not both)');
      if (flags.checkpoint && !flags.tokenizer)
        throw new InvalidArgumentError('--checkpoint needs --tokenizer (or use --model)');
      const report = await selectBackend(flags.backend);
      process.stderr.write(`tfjs backend: ${report.backend} (${report.source})\n`);
      if (flags.model) {
        await generateFromModel(flags.model, flags);
        return;
      }
      const weights = loadCheckpoint(flags.checkpoint as string);
      const tok = loadTokenizer(flags.tokenizer as string, weights.config.vocabSize);
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

async function generateFromModel(path: string, flags: GenerateFlags): Promise<void> {
  const base = await loadBaseModel({ model: path, tokenizer: flags.tokenizer });
  const model = new LlamaModel(base.weights);
  try {
    if (base.format === 'llama2c') {
      // llama2.c models are trained with BOS first and its `run` is their reference behaviour.
      process.stdout.write(
        runLikeLlama2c(model, base.tokenizer, {
          prompt: flags.prompt,
          steps: flags.steps,
          temperature: flags.temperature,
          topP: flags.topp,
          seed: flags.seed,
        }),
      );
    } else {
      const tok = base.tokenizer;
      const prompt = tok.encode(flags.prompt ?? '', { bos: tok.addBos ?? false });
      if (prompt.length === 0 && tok.bosId >= 0) prompt.push(tok.bosId);
      if (prompt.length === 0)
        throw new InvalidArgumentError('--prompt is empty and the model has no BOS token');
      const ids = generate(model, prompt, {
        maxNewTokens: flags.steps > 0 ? flags.steps : base.contextLength - prompt.length,
        temperature: flags.temperature,
        topP: flags.topp,
        seed: flags.seed ?? Date.now(),
        stopTokens: tok.eosId >= 0 ? [tok.eosId] : [],
      });
      process.stdout.write(tok.decode(ids));
    }
    if (process.stdout.isTTY) process.stdout.write('\n');
  } finally {
    model.dispose();
  }
}
