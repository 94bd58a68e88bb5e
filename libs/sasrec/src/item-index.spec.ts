import { ItemIndex } from './item-index';

describe('ItemIndex', () => {
  it('maps external ids to dense indices 1..n in first-seen order and back', () => {
    const index = ItemIndex.fromSequences<number>([
      [818, 599, 121],
      [599, 3495],
    ]);
    expect(index.size).toBe(4);
    expect(index.encode([818, 599, 121, 3495])).toEqual([1, 2, 3, 4]);
    expect(index.decode([4, 1])).toEqual([3495, 818]);
    expect(index.add(599)).toBe(2);
    expect(index.add(7)).toBe(5);
  });

  it('round-trips through JSON and rejects unknown ids and padding', () => {
    const index = ItemIndex.fromIds<string>(['a', 'b']);
    const restored = ItemIndex.fromJSON(index.toJSON());
    expect(restored.indexOf('b')).toBe(2);
    expect(() => restored.indexOf('c')).toThrow(/unknown item id c/);
    expect(() => restored.idOf(0)).toThrow(/not in 1\.\.2/);
    expect(() => ItemIndex.fromJSON(['a', 'a'])).toThrow(/duplicate/);
  });
});
