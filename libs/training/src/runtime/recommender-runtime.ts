import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  ADAPTER_MANIFEST_FILE,
  loadCheckpoint,
  loadLoraAdapter,
  loadTokenizer,
  LlamaModel,
  mergeLora,
  scoreJobs,
  sha256File,
  type LlamaWeights,
  type LoraManifest,
} from '@cprec/lm';
import {
  memoizeTokenizer,
  type Phrasing,
  type PromptItem,
  type SampleItems,
  type TokenBudget,
  type Tokenizer,
} from '@cprec/corpus';
import { candidateContinuations, encodePrompt, type PromptSettings } from '../eval/evaluate';
import { disposeInjection, injectionFor, type HybridParts } from '../sft/hybrid';
import { ITEM_EMBEDDINGS_FILE, ItemEmbeddingTable } from '../sft/item-embeddings';
import { ItemProjector } from '../sft/projector';
import { PROJECTOR_FILE, SFT_ADAPTER_DIR } from '../sft/fine-tune';

/** The adapter id reported when no adapter is loaded (the base model serves). */
export const BASE_ADAPTER_ID = 'base';

/** What the runtime is built from: base weights (host arrays) and their tokenizer, loaded once. */
export interface BaseModel {
  readonly weights: LlamaWeights;
  readonly tokenizer: Tokenizer;
  /** e.g. "stories260K.bin" or "tiny-random"; adapters record the one they were trained on. */
  readonly baseModelId: string;
  /** sha256 of the base checkpoint; an adapter trained on other weights is refused. */
  readonly baseChecksum: string;
}

export interface RuntimeOptions {
  /** The token budget of prompts (the one SFT and evaluation use). */
  readonly budget: TokenBudget;
  /**
   * Token id at hybrid placeholders; default the tokenizer's own `placeholderId` when it has one
   * (WordTokenizer), else 0 (any valid id: its embedding is replaced).
   */
  readonly placeholderId?: number;
  /** Evaluation phrasing; default the first LLaRA phrasing (as `encodePrompt`). */
  readonly phrasing?: Phrasing;
  /** Fold LoRA into the base weights after loading (faster inference; default true). */
  readonly mergeLora?: boolean;
  /** Continuation rows per forward when scoring (memory bound). Default 64. */
  readonly maxRowsPerForward?: number;
}

/** Which files an adapter directory holds. */
export type AdapterBundleKind = 'lora' | 'sft';

export interface AdapterBundle {
  readonly kind: AdapterBundleKind;
  /** The LoRA directory (the bundle itself, or its `adapter/` for SFT bundles). */
  readonly loraDir: string;
  readonly projectorFile: string | null;
  readonly embeddingsFile: string | null;
}

/**
 * Recognises an adapter directory: a plain LoRA directory (`adapter.json` + `adapter.safetensors`,
 * what CPT publishes) or an SFT bundle (`adapter/` + optional `projector.safetensors` and
 * `item-embeddings.safetensors`, what `fineTune` writes).
 */
export function inspectAdapterBundle(dir: string): AdapterBundle {
  if (existsSync(join(dir, ADAPTER_MANIFEST_FILE)))
    return { kind: 'lora', loraDir: dir, projectorFile: null, embeddingsFile: null };
  const loraDir = join(dir, SFT_ADAPTER_DIR);
  if (existsSync(join(loraDir, ADAPTER_MANIFEST_FILE))) {
    const projector = join(dir, PROJECTOR_FILE);
    const embeddings = join(dir, ITEM_EMBEDDINGS_FILE);
    return {
      kind: 'sft',
      loraDir,
      projectorFile: existsSync(projector) ? projector : null,
      embeddingsFile: existsSync(embeddings) ? embeddings : null,
    };
  }
  throw new Error(
    `${dir} is not an adapter bundle: neither ${ADAPTER_MANIFEST_FILE} nor ${SFT_ADAPTER_DIR}/${ADAPTER_MANIFEST_FILE} found`,
  );
}

/** One request to rank: the user's history (oldest first) and the candidates, with titles. */
export interface RankRequest {
  readonly domain: string;
  readonly history: readonly PromptItem[];
  readonly candidates: readonly PromptItem[];
}

export interface ScoredCandidate {
  readonly itemId: string;
  /** The title as shown in the prompt (after the token budget's truncation). */
  readonly title: string;
  /** Summed log-likelihood of the title + EOS as the answer (higher is better). */
  readonly score: number;
  /** 1-based; ties keep the request's candidate order. */
  readonly rank: number;
}

export interface LoadOptions {
  /** Identifier reported with every ranking (e.g. the AdapterPromoted adapter_id). */
  readonly adapterId?: string;
}

/**
 * The language-model recommender as inference needs it: the base model and tokenizer loaded
 * once, and any number of `LoadedRecommender`s built from it — the base alone or with one adapter
 * bundle. Serving holds one per target domain with an adapter, plus the base for the others (and
 * briefly one more while a new adapter is verified); the evaluator loads the adapters it scores.
 *
 * The base's tfjs weights are uploaded once (on first use) and shared by every
 * `LoadedRecommender` (`new LlamaModel(base)`): an adapter adds its LoRA tensors only, or — merged
 * (the default, one matmul per projection instead of three and the fused native blocks) — private
 * merged copies of the projections it adapts; the shared weights are never written, so a swap
 * never mutates what another domain is served with. `dispose()` frees the shared base once every
 * recommender built from it is disposed.
 */
export class RecommenderRuntime {
  /** The base tokenizer, memoized: every ranking re-encodes the template and catalogue titles. */
  readonly tokenizer: Tokenizer;
  /** The base weights as tfjs tensors, uploaded on first use and shared by every recommender. */
  private sharedBase: LlamaModel | null = null;

  private constructor(
    readonly base: BaseModel,
    readonly options: RuntimeOptions,
  ) {
    this.tokenizer = memoizeTokenizer(base.tokenizer);
  }

  static fromBase(base: BaseModel, options: RuntimeOptions): RecommenderRuntime {
    return new RecommenderRuntime(base, options);
  }

  /** Loads a llama2.c file or HF directory and its tokenizer, hashing the checkpoint. */
  static async fromCheckpoint(
    checkpoint: string,
    tokenizerPath: string,
    options: RuntimeOptions & { baseModelId?: string; baseChecksum?: string },
  ): Promise<RecommenderRuntime> {
    const weights = loadCheckpoint(checkpoint);
    const tokenizer = loadTokenizer(tokenizerPath, weights.config.vocabSize);
    // A HF directory is pinned by its weights file (the config travels with it).
    const weightsFile = statSync(checkpoint).isDirectory()
      ? join(checkpoint, 'model.safetensors')
      : checkpoint;
    const baseChecksum = options.baseChecksum ?? (await sha256File(weightsFile));
    return new RecommenderRuntime(
      {
        weights,
        tokenizer,
        baseModelId: options.baseModelId ?? checkpoint.split('/').pop() ?? checkpoint,
        baseChecksum,
      },
      options,
    );
  }

  /** The base tensors every recommender shares, uploaded once. */
  private baseModel(): LlamaModel {
    if (!this.sharedBase) this.sharedBase = new LlamaModel(this.base.weights);
    return this.sharedBase;
  }

  /** The base model without an adapter (adapter id `base`), on the shared base tensors. */
  loadBase(): LoadedRecommender {
    return new LoadedRecommender(this, new LlamaModel(this.baseModel()), null, null, BASE_ADAPTER_ID);
  }

  /** Frees the shared base tensors; every recommender built from this runtime must be disposed first. */
  dispose(): void {
    this.sharedBase?.dispose();
    this.sharedBase = null;
  }

  /**
   * Builds a recommender with the adapter bundle in `dir` (a verified local path: the caller
   * checks the artefact's sha256 first). Refuses an adapter trained on another base checkpoint;
   * merges LoRA unless `mergeLora: false`. Nothing is left allocated when it throws.
   */
  load(dir: string, opts: LoadOptions = {}): LoadedRecommender {
    const bundle = inspectAdapterBundle(dir);
    const model = new LlamaModel(this.baseModel());
    let projector: ItemProjector | null = null;
    try {
      const manifest = loadLoraAdapter(model, bundle.loraDir, {
        expectedBaseChecksum: this.base.baseChecksum,
      });
      if (this.options.mergeLora ?? true) mergeLora(model);
      let hybrid: HybridParts | null = null;
      if (bundle.projectorFile && bundle.embeddingsFile) {
        projector = ItemProjector.load(bundle.projectorFile);
        const embeddings = ItemEmbeddingTable.load(bundle.embeddingsFile);
        if (projector.config.inDim !== embeddings.dim || projector.config.outDim !== model.config.dim)
          throw new Error(
            `${dir}: projector maps ${projector.config.inDim} → ${projector.config.outDim}, but the item table has width ${embeddings.dim} and the model ${model.config.dim}`,
          );
        hybrid = { embeddings, projector };
      }
      return new LoadedRecommender(this, model, manifest, hybrid, opts.adapterId ?? manifest.createdAt);
    } catch (err) {
      projector?.dispose();
      model.dispose();
      throw err;
    }
  }
}

/**
 * One loaded model (base, or base + adapter) ready to rank candidates by exact likelihood with the
 * prompt encoding evaluation uses (`encodePrompt` with the same `PromptSettings`): hybrid prompts
 * when the bundle carries a projector and item table, text prompts otherwise.
 */
export class LoadedRecommender {
  private disposed = false;
  /** Settings to pass to `evaluateModel` / `likelihoodRank` for this model. */
  readonly settings: PromptSettings;

  constructor(
    readonly runtime: RecommenderRuntime,
    readonly model: LlamaModel,
    /** The adapter's manifest (lineage, LoRA config), null for the base model. */
    readonly manifest: LoraManifest | null,
    readonly hybrid: HybridParts | null,
    readonly adapterId: string,
  ) {
    const { options, tokenizer } = runtime;
    const own = (tokenizer as Partial<{ placeholderId: number }>).placeholderId;
    this.settings = {
      tokenizer,
      budget: options.budget,
      style: hybrid ? 'hybrid' : 'text',
      placeholderId: options.placeholderId ?? (typeof own === 'number' ? own : 0),
      hybrid,
      ...(options.phrasing ? { phrasing: options.phrasing } : {}),
    };
  }

  /** Ranks the candidates of one request (see `rankBatch`). */
  rank(request: RankRequest): ScoredCandidate[] {
    return this.rankBatch([request])[0];
  }

  /**
   * Ranks several requests in shared forwards (`scoreJobs`): the scores equal ranking each alone.
   * A candidate's score is log p(title + EOS | prompt) summed over its tokens, as `likelihoodRank`
   * computes it. The prompt needs an answer slot for the budget: the longest candidate title is
   * used, so whichever candidate the model answers fits.
   */
  rankBatch(requests: readonly RankRequest[]): ScoredCandidate[][] {
    if (this.disposed) throw new Error(`recommender ${this.adapterId} was disposed`);
    if (requests.length === 0) return [];
    const { tokenizer } = this.settings;
    const encoded = requests.map((r, i) => {
      if (r.candidates.length === 0) throw new Error(`request ${i} has no candidates`);
      const longest = r.candidates.reduce((a, b) => (b.title.length > a.title.length ? b : a));
      const items: SampleItems = { history: r.history, candidates: r.candidates, target: longest };
      return encodePrompt(items, this.settings);
    });
    const jobs = encoded.map((e) => ({
      promptIds: e.inputIds,
      continuations: candidateContinuations(e, tokenizer.eosId),
    }));
    const inject = this.settings.style === 'hybrid' ? injectionFor(encoded, this.hybrid) : null;
    let scores: number[][];
    try {
      scores = scoreJobs(this.model, jobs, {
        inject,
        ...(this.runtime.options.maxRowsPerForward
          ? { maxRows: this.runtime.options.maxRowsPerForward }
          : {}),
      });
    } finally {
      disposeInjection(inject);
    }
    return encoded.map((e, r) => {
      const order = e.candidateItemIds.map((_, i) => i).sort((a, b) => scores[r][b] - scores[r][a] || a - b);
      const rankOf = new Array<number>(order.length);
      order.forEach((i, k) => (rankOf[i] = k + 1));
      return order.map((i) => ({
        itemId: e.candidateItemIds[i],
        title: e.candidateTitles[i],
        score: scores[r][i],
        rank: rankOf[i],
      }));
    });
  }

  /**
   * A small ranking through the whole path (encoding, injection, scoring) that must yield finite
   * scores: run before a freshly loaded adapter is allowed to serve. Uses items of the bundle's
   * item table when it has one, so hybrid injection is exercised too.
   */
  smokeTest(): ScoredCandidate[] {
    const known = this.hybrid?.embeddings.itemIds ?? [];
    const item = (k: number, title: string): PromptItem => ({ itemId: known[k] ?? `smoke-${k}`, title });
    const ranked = this.rank({
      domain: 'smoke',
      history: [item(0, 'a story about a cat')],
      candidates: [item(1, 'a story about a dog'), item(2, 'the little red boat')],
    });
    const bad = ranked.find((c) => !Number.isFinite(c.score));
    if (bad) throw new Error(`smoke inference of ${this.adapterId} gave a non-finite score (${bad.score})`);
    return ranked;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.hybrid?.projector.dispose();
    this.model.dispose();
  }
}
