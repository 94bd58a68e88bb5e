import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import {
  defaultPromptTokens,
  loadBaseModel,
  loadLoraAdapter,
  LlamaModel,
  selectBackend,
  type BackendPreference,
} from '@cprec/lm';
import { openDataset } from '@cprec/datasets';
import { formatReport } from '@cprec/metrics';
import {
  evaluateModel,
  ItemEmbeddingTable,
  ItemProjector,
  loadDomainSplit,
  ITEM_EMBEDDINGS_FILE,
  PROJECTOR_FILE,
} from '@cprec/training';

function int(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0)
      throw new InvalidArgumentError(`${name} must be a non-negative integer`);
    return n;
  };
}

interface EvalFlags {
  model?: string;
  checkpoint?: string;
  tokenizer?: string;
  adapter?: string;
  dataset: string;
  domain: string;
  limit?: number;
  seed: number;
  json?: boolean;
  maxTokens?: number;
  maxTitleTokens: number;
  likelihood: boolean;
  backend: BackendPreference;
}

/**
 * `cprec eval`: offline evaluation of the base model (zero-shot) or of a LoRA adapter on the
 * frozen leave-one-out test split of one domain (20 candidates). An SFT output directory (adapter
 * + projector + item embeddings, as `fineTune` writes) is evaluated with hybrid prompts; any other
 * adapter (e.g. a CPT adapter) with text prompts.
 */
export function register(program: Command): void {
  program
    .command('eval')
    .description(
      'evaluate a model/adapter on a domain test split: HR@1, Valid Ratio, HR@k, NDCG@k per sparsity bucket',
    )
    .option(
      '--model <path>',
      'base model: .gguf file, llama2.c .bin or Hugging Face folder (--checkpoint is the former name)',
    )
    .option('--checkpoint <path>', 'former name of --model')
    .option('--tokenizer <file>', 'llama2.c bases only (default: the tok*.bin beside the checkpoint)')
    .option('--adapter <dir>', 'LoRA adapter directory (none: zero-shot base model)')
    .requiredOption('--dataset <path>', 'dataset folder, e.g. ../shared/data/amazon2018-game')
    .requiredOption('--domain <slug>', 'domain to evaluate, e.g. game')
    .option('--limit <n>', 'evaluate at most n users (seeded sample)', int('--limit'))
    .option('--seed <s>', 'seed of the user sample and of the frozen candidates', int('--seed'), 1)
    .option(
      '--max-tokens <n>',
      'token budget of a prompt (default: the model context, at most 1,024)',
      int('--max-tokens'),
    )
    .option('--max-title-tokens <n>', 'tokens per title', int('--max-title-tokens'), 12)
    .option('--no-likelihood', 'skip exact candidate likelihood ranking')
    .option('--backend <name>', 'auto | cpu | wasm | tensorflow', 'auto')
    .option('--json', 'print the report as JSON')
    .action(async (flags: EvalFlags) => {
      const backend = await selectBackend(flags.backend);
      process.stderr.write(`tfjs backend: ${backend.backend} (native kernels: ${backend.nativeKernels})\n`);
      const modelPath = flags.model ?? flags.checkpoint;
      if (!modelPath) throw new InvalidArgumentError('name the base model with --model PATH');
      const base = await loadBaseModel({ model: modelPath, tokenizer: flags.tokenizer });
      const tokenizer = base.tokenizer;
      const model = new LlamaModel(base.weights);
      let projector: ItemProjector | null = null;
      try {
        let hybrid = null;
        if (flags.adapter) {
          loadLoraAdapter(model, flags.adapter, { expectedBaseChecksum: base.baseChecksum });
          const sftDir = dirname(flags.adapter);
          if (existsSync(join(sftDir, PROJECTOR_FILE)) && existsSync(join(sftDir, ITEM_EMBEDDINGS_FILE))) {
            projector = ItemProjector.load(join(sftDir, PROJECTOR_FILE));
            hybrid = { projector, embeddings: ItemEmbeddingTable.load(join(sftDir, ITEM_EMBEDDINGS_FILE)) };
          }
        }
        const split = await loadDomainSplit(openDataset({ path: flags.dataset, domain: flags.domain }), {
          domain: flags.domain,
          seed: flags.seed,
          ...(flags.limit !== undefined ? { limitUsers: flags.limit } : {}),
        });
        process.stderr.write(
          `${split.test.length} test examples (${split.totalUsers} users in ${split.domain}), ${hybrid ? 'hybrid' : 'text'} prompts\n`,
        );
        const { report } = await evaluateModel({
          model,
          tokenizer,
          examples: split.test,
          budget: {
            maxTokens: Math.min(
              flags.maxTokens ?? defaultPromptTokens(base.contextLength),
              base.contextLength,
            ),
            maxTitleTokens: flags.maxTitleTokens,
          },
          style: hybrid ? 'hybrid' : 'text',
          placeholderId: 0,
          hybrid,
          likelihood: flags.likelihood,
          onProgress: (done, total) => {
            if (done % 25 === 0 || done === total) process.stderr.write(`  ${done}/${total}\n`);
          },
        });
        process.stdout.write(
          flags.json ? JSON.stringify(report, null, 2) + '\n' : formatReport(report) + '\n',
        );
      } finally {
        projector?.dispose();
        model.dispose();
      }
    });
}
