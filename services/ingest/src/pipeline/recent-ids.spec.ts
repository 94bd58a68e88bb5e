import { RecentIds } from './recent-ids';

describe('RecentIds', () => {
  it('remembers up to its capacity and forgets the oldest first', () => {
    const r = new RecentIds(3);
    ['a', 'b', 'c'].forEach((id) => r.add(id));
    expect(['a', 'b', 'c'].every((id) => r.has(id))).toBe(true);
    r.add('d');
    expect(r.has('a')).toBe(false);
    expect(['b', 'c', 'd'].every((id) => r.has(id))).toBe(true);
    expect(r.size).toBe(3);
  });

  it('ignores a repeated id instead of taking a second slot', () => {
    const r = new RecentIds(2);
    r.add('a');
    r.add('a');
    r.add('b');
    expect(r.has('a') && r.has('b')).toBe(true);
    expect(r.size).toBe(2);
  });

  it('stores nothing with capacity 0', () => {
    const r = new RecentIds(0);
    r.add('a');
    expect(r.has('a')).toBe(false);
  });
});
