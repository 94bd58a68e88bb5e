import { InteractionEvent, ItemEvent } from '@cprec/contracts';
import { InteractionRepository, ItemRepository } from '@cprec/clickhouse';
import { IngestStore } from './pipeline/ports';

/** The ingest service is the one writer of `interactions` and `items`. */
export class ClickHouseIngestStore implements IngestStore {
  constructor(
    private readonly interactions: InteractionRepository,
    private readonly items: ItemRepository,
  ) {}

  /** Rows are built once, as insert text, straight from the parsed events (no record copies). */
  insertInteractions(rows: readonly InteractionEvent[]): Promise<void> {
    return this.interactions.insertEvents(rows);
  }

  insertItems(rows: readonly ItemEvent[]): Promise<void> {
    const now = Date.now();
    return this.items.upsertBatch(
      rows.map((i) => ({
        item_id: i.item_id,
        domain: i.domain,
        title: i.title,
        attributes: i.attributes ?? {},
        updated_at_ms: i.ts ?? now,
      })),
    );
  }
}
