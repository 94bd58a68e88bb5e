import type { InjectedEmbeddings } from '@cprec/lm';
import type { EncodedSample } from '@cprec/corpus';
import type { ItemEmbeddingTable } from './item-embeddings';
import type { ItemProjector } from './projector';

/** What hybrid (LLaRA) prompts need besides the LM: the frozen item table and the trainable projector. */
export interface HybridParts {
  readonly embeddings: ItemEmbeddingTable;
  readonly projector: ItemProjector;
}

/**
 * The injected embeddings of a batch of encoded samples: every placeholder position [row, column]
 * gets projector(item embedding). Call inside the gradient closure (and a tidy) so the projector
 * receives gradients; returns null when no sample has placeholders (text prompts).
 */
export function injectionFor(
  samples: readonly Pick<EncodedSample, 'placeholders'>[],
  parts: HybridParts | null,
): InjectedEmbeddings | null {
  if (!parts) return null;
  const positions: [number, number][] = [];
  const itemIds: string[] = [];
  samples.forEach((s, b) => {
    for (const p of s.placeholders) {
      positions.push([b, p.position]);
      itemIds.push(p.itemId);
    }
  });
  if (positions.length === 0) return null;
  const rows = parts.embeddings.rows(itemIds);
  const vectors = parts.projector.apply(rows);
  rows.dispose();
  return { positions, vectors };
}

/** Disposes the vectors of an injection built outside a tidy. */
export function disposeInjection(inject: InjectedEmbeddings | null): void {
  inject?.vectors.dispose();
}
