import { ItemIndex, Popularity, SasRec, type SasRecConfig } from '@cprec/sasrec';

export type FirstStageSource = 'sasrec' | 'popularity';

export interface FirstStageOptions {
  /** Rebuild a domain's models after this long (new interactions). */
  refreshMs: number;
  /** SASRec is trained only when the domain has at least this many sequences of length ≥ 2. */
  minSequencesForSasrec: number;
  /** Wall-clock budget of one SASRec fit (it yields to the event loop between batches). */
  fitBudgetMs: number;
  sasrec: Partial<Omit<SasRecConfig, 'numItems'>>;
  onError?: (message: string) => void;
  onBuilt?: (domain: string, what: string) => void;
}

interface DomainModels {
  index: ItemIndex<string>;
  popularity: Popularity;
  sasrec: SasRec | null;
  builtAtMs: number;
}

/**
 * The first stage of `/v1/recommend` when no candidates are given: proposes N items of the
 * domain the user does not already have. Popularity is ready as soon as the domain's sequences
 * are read; SASRec (trained in the background from the same sequences, yielding between batches)
 * takes over once trained. Models are rebuilt after `refreshMs`, the old ones serving meanwhile.
 */
export class FirstStage {
  private readonly domains = new Map<string, DomainModels>();
  private readonly building = new Map<string, Promise<DomainModels | null>>();
  private closed = false;

  constructor(
    private readonly sequencesOf: (domain: string) => Promise<string[][]>,
    private readonly options: FirstStageOptions,
  ) {}

  /**
   * Up to `n` item ids, best first, excluding `history`; null when the domain has no sequences.
   */
  async propose(
    domain: string,
    history: readonly string[],
    n: number,
  ): Promise<{ itemIds: string[]; source: FirstStageSource } | null> {
    let models = this.domains.get(domain) ?? null;
    if (!models) models = await this.build(domain);
    else if (Date.now() - models.builtAtMs > this.options.refreshMs) void this.build(domain);
    if (!models) return null;
    const known = history.filter((id) => models.index.has(id));
    const dense = models.index.encode(known);
    const exclude = new Set(dense);
    const useSasrec = models.sasrec !== null && dense.length > 0;
    const ranked = useSasrec
      ? models.sasrec!.topN(dense, n, exclude)
      : models.popularity.topN(dense, n, exclude);
    return { itemIds: models.index.decode(ranked.items), source: useSasrec ? 'sasrec' : 'popularity' };
  }

  /** Reads the sequences and builds popularity now, SASRec in the background (one build at a time per domain). */
  build(domain: string): Promise<DomainModels | null> {
    const running = this.building.get(domain);
    if (running) return running;
    const task = (async (): Promise<DomainModels | null> => {
      const sequences = (await this.sequencesOf(domain)).filter((s) => s.length > 0);
      if (sequences.length === 0) return null;
      const index = ItemIndex.fromSequences<string>(sequences);
      const encoded = sequences.map((s) => index.encode(s));
      const popularity = new Popularity({ numItems: index.size });
      await popularity.fit(encoded);
      const previous = this.domains.get(domain);
      const models: DomainModels = { index, popularity, sasrec: null, builtAtMs: Date.now() };
      this.domains.set(domain, models);
      previous?.popularity.dispose();
      previous?.sasrec?.dispose();
      this.options.onBuilt?.(domain, `popularity over ${index.size} items`);
      const trainable = encoded.filter((s) => s.length >= 2);
      // Started on a later turn so the request that triggered the build is answered first (the
      // fit shares this event loop, yielding between batches).
      if (trainable.length >= this.options.minSequencesForSasrec)
        setTimeout(() => void this.trainSasrec(domain, models, trainable), 50);
      return models;
    })();
    this.building.set(domain, task);
    const done = (): void => void this.building.delete(domain);
    task.then(done, (err: Error) => {
      done();
      this.options.onError?.(`first stage for ${domain}: ${err.message}`);
    });
    return task.catch(() => null);
  }

  private async trainSasrec(domain: string, models: DomainModels, sequences: number[][]): Promise<void> {
    const sasrec = new SasRec({ ...this.options.sasrec, numItems: models.index.size });
    try {
      await sasrec.fit(sequences, { timeBudgetMs: this.options.fitBudgetMs });
    } catch (err) {
      sasrec.dispose();
      this.options.onError?.(`SASRec for ${domain} failed to train: ${(err as Error).message}`);
      return;
    }
    // Only attach to the models it was trained for (a refresh may have replaced them meanwhile).
    if (this.closed || this.domains.get(domain) !== models) return sasrec.dispose();
    models.sasrec = sasrec;
    this.options.onBuilt?.(domain, `SASRec over ${models.index.size} items, ${sequences.length} sequences`);
  }

  dispose(): void {
    this.closed = true;
    for (const m of this.domains.values()) {
      m.popularity.dispose();
      m.sasrec?.dispose();
    }
    this.domains.clear();
  }
}
