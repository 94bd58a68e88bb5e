import { readFileSync, writeFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { parseSafetensors, serializeSafetensors } from '@cprec/lm';

/** File name of a frozen item table inside an SFT output directory. */
export const ITEM_EMBEDDINGS_FILE = 'item-embeddings.safetensors';

/**
 * A frozen table of collaborative item embeddings (SASRec's item table) keyed by external item id.
 * Held on the host: hybrid prompts need a handful of rows per batch, and copying those rows into a
 * small tensor per batch keeps the (frozen) table out of every gradient tape.
 */
export class ItemEmbeddingTable {
  private readonly rowOf = new Map<string, number>();

  /**
   * @param itemIds external id of row i (row order of `data`)
   * @param data row-major [itemIds.length, dim]
   */
  constructor(
    readonly itemIds: readonly string[],
    readonly data: Float32Array,
    readonly dim: number,
  ) {
    if (data.length !== itemIds.length * dim)
      throw new Error(`embedding table has ${data.length} values, expected ${itemIds.length} × ${dim}`);
    itemIds.forEach((id, i) => this.rowOf.set(id, i));
  }

  /**
   * From a recommender's dense item table [numItems + 1, dim] (row 0 = padding) and the dense
   * order of its ids (`ItemIndex.toJSON()`: id of dense index i + 1 at position i).
   */
  static fromDenseTable(table: tf.Tensor2D, denseIds: readonly string[]): ItemEmbeddingTable {
    const [rows, dim] = table.shape;
    if (rows !== denseIds.length + 1)
      throw new Error(`item table has ${rows} rows, expected ${denseIds.length} items + padding`);
    const all = table.dataSync() as Float32Array;
    return new ItemEmbeddingTable(denseIds, all.slice(dim), dim);
  }

  get size(): number {
    return this.itemIds.length;
  }

  has(itemId: string): boolean {
    return this.rowOf.has(itemId);
  }

  /**
   * Rows for the given ids as a [n, dim] tensor. Unknown items (cold: never seen by the
   * recommender) get a zero row, so the projector sees "no collaborative evidence" rather than an
   * error: the title text next to the placeholder still describes the item.
   */
  rows(itemIds: readonly string[]): tf.Tensor2D {
    const out = new Float32Array(itemIds.length * this.dim);
    itemIds.forEach((id, k) => {
      const r = this.rowOf.get(id);
      if (r !== undefined) out.set(this.data.subarray(r * this.dim, (r + 1) * this.dim), k * this.dim);
    });
    return tf.tensor2d(out, [itemIds.length, this.dim]);
  }

  /** Writes the table (ids in the metadata) so an SFT output is self-contained for evaluation. */
  save(path: string, metadata: Record<string, string> = {}): void {
    writeFileSync(
      path,
      serializeSafetensors(
        { embeddings: { shape: [this.size, this.dim], data: this.data } },
        { ...metadata, item_ids: JSON.stringify(this.itemIds) },
      ),
    );
  }

  static load(path: string): ItemEmbeddingTable {
    const file = parseSafetensors(readFileSync(path));
    const t = file.tensors.get('embeddings');
    if (!t || t.shape.length !== 2) throw new Error(`${path}: no [items, dim] "embeddings" tensor`);
    const ids = JSON.parse(file.metadata.item_ids ?? '[]') as string[];
    return new ItemEmbeddingTable(ids, t.data, t.shape[1]!);
  }
}
