import {
  ClickHouse,
  awaitFrozenSplit,
  EvalSplitRepository,
  type SplitWaitOptions,
  ident,
  INTERACTIONS_TABLE,
  ItemRepository,
  sql,
  type StoredEvalExample,
} from '@cprec/clickhouse';
import type { EvaluationExample } from '@cprec/corpus';
import type { SplitRequestCommand } from '@cprec/contracts';
import { casesFromExamples, type EvaluationCase } from '@cprec/training';
import type { InteractionsPort, SplitPort, SplitSpec } from '../ports';

export interface SplitGatewayOptions extends SplitWaitOptions {
  /** Sends a split request to the sequencer's mailbox. */
  request: (command: SplitRequestCommand) => Promise<void>;
}

const KIND: Record<StoredEvalExample['kind'], EvaluationExample['kind']> = {
  'loo-test': 'test',
  'loo-valid': 'validation',
  window: 'window',
};

/**
 * Splits and interactions as the evaluator reads them. The sequencer is the one writer of
 * evaluation splits: a missing split is requested on its mailbox and polled for (read-only use
 * of EvalSplitRepository); the request is repeated every few polls in case the first was lost
 * (the sequencer handles requests idempotently per split id).
 */
export class ClickHouseGateway implements SplitPort, InteractionsPort {
  private readonly splits: EvalSplitRepository;
  private readonly items: ItemRepository;

  constructor(
    private readonly ch: ClickHouse,
    private readonly options: SplitGatewayOptions,
  ) {
    this.splits = new EvalSplitRepository(ch);
    this.items = new ItemRepository(ch);
  }

  async ensureSplit(spec: SplitSpec): Promise<void> {
    await awaitFrozenSplit(
      this.splits,
      spec.splitId,
      (ts) =>
        this.options.request({
          kind: 'create_split',
          split_id: spec.splitId,
          split_kind: spec.kind,
          domains: spec.domains,
          seed: spec.seed,
          ...(spec.windowStartMs !== undefined ? { window_start_ms: spec.windowStartMs } : {}),
          ...(spec.windowEndMs !== undefined ? { window_end_ms: spec.windowEndMs } : {}),
          requested_by: 'evaluator',
          ts,
        }),
      this.options,
    );
  }

  async readCases(
    splitId: string,
    domain: string,
    kind: 'loo-test' | 'window',
    limit: number,
  ): Promise<EvaluationCase[]> {
    const stored: StoredEvalExample[] = [];
    for await (const e of this.splits.streamExamples(splitId, {
      domain,
      kind,
      chunk: Math.min(limit, 5000),
    })) {
      stored.push(e);
      if (stored.length >= limit) break;
    }
    const ids = [...new Set(stored.flatMap((e) => [...e.history, ...e.candidates, e.target]))];
    const titles = new Map((await this.items.get(domain, ids)).map((i) => [i.item_id, i.title]));
    const examples: EvaluationExample[] = stored.map((e) => ({
      splitId: e.splitId,
      kind: KIND[e.kind],
      userId: e.userId,
      domain: e.domain,
      history: e.history,
      target: e.target,
      targetEventId: e.targetEventId,
      targetTsMs: e.targetTsMs,
      candidates: e.candidates,
      seed: e.seed,
    }));
    return casesFromExamples(examples, (id) => titles.get(id));
  }

  async newestEventMs(): Promise<number | null> {
    const [row] = await this.ch.query<{ n: string; t: string }>(
      sql`SELECT count() AS n, max(ts_ms) AS t FROM ${ident(INTERACTIONS_TABLE)}`,
    );
    return row === undefined || Number(row.n) === 0 ? null : Number(row.t);
  }
}
