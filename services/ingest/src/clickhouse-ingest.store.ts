import { InteractionEvent, ItemEvent } from '@cprec/contracts';
import { InteractionRepository, ItemRepository } from '@cprec/clickhouse';
import { IngestStore } from './pipeline/ports';

/** The ingest service is the one writer of `interactions` and `items`. */
export class ClickHouseIngestStore implements IngestStore {
  constructor(
    private readonly interactions: InteractionRepository,
    private readonly items: ItemRepository,
  ) {}

  insertInteractions(rows: readonly InteractionEvent[]): Promise<void> {
    return this.interactions.insertBatch(
      rows.map((e) => ({
        event_id: e.event_id,
        user_id: e.user_id,
        item_id: e.item_id,
        domain: e.domain,
        ts_ms: e.ts,
        seq: e.seq ?? 0,
        platform: e.platform ?? '',
        title: e.title ?? '',
      })),
    );
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
