import { IN_LIST_MAX_BYTES, inListChunks, queryInChunks } from './in-list';
import { sqlString } from './literal';

describe('bounded IN lists', () => {
  it('splits a long list into chunks whose literal text stays under the bound, keeping every value in order', () => {
    const ids = Array.from({ length: 20_000 }, (_, i) => `user-${i}-'quoted'`);
    const chunks = inListChunks(ids);
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.flat()).toEqual(ids);
    for (const chunk of chunks)
      expect(chunk.map((v) => sqlString(v)).join(', ').length).toBeLessThanOrEqual(IN_LIST_MAX_BYTES);
  });

  it('keeps a short list (and an empty one) in one chunk', () => {
    expect(inListChunks(['a', 'b'])).toEqual([['a', 'b']]);
    expect(inListChunks([])).toEqual([[]]);
  });

  it('merges the rows of every chunk in the single query order, limit applied', async () => {
    const ids = Array.from({ length: 9_000 }, (_, i) => `id-${String(i).padStart(5, '0')}`);
    const queried: number[] = [];
    const rows = await queryInChunks(
      ids,
      async (chunk) => {
        queried.push(chunk.length);
        return chunk.map((id) => ({ id, score: Number(id.slice(3)) % 97 }));
      },
      { order: (a, b) => b.score - a.score || (a.id < b.id ? -1 : 1), limit: 5 },
    );
    expect(queried.length).toBeGreaterThan(1);
    expect(rows.map((r) => r.score)).toEqual([96, 96, 96, 96, 96]);
  });
});
