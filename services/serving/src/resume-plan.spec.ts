import type { ServingEventRecord } from '@cprec/clickhouse';
import { mergeAssignments, resumePlan } from './resume-plan';

const served = (domain: string, adapterId: string, ts: number, event: 'switch' | 'rollback' = 'switch') =>
  ({
    event,
    domain,
    adapter_id: adapterId,
    previous_adapter_id: '',
    detail: '',
    ts_ms: ts,
  }) satisfies ServingEventRecord;
const promotion = (
  adapterId: string,
  domains: string[],
  ts: number,
  decision: 'promoted' | 'rejected' = 'promoted',
) => ({
  adapter_id: adapterId,
  decision,
  hr1: Object.fromEntries(domains.map((d) => [d, 0.1])),
  ts_ms: ts,
});

describe('resumePlan: what each domain serves after a start', () => {
  it('resumes what a replica last switched in when no promotion is newer (the restart case)', () => {
    expect(resumePlan([served('games', 'a1', 200)], [promotion('a1', ['games'], 100)])).toEqual([
      { domain: 'games', adapterId: 'a1', source: 'served' },
    ]);
  });

  it('resumes a promotion no replica has served: a replica started after it would otherwise serve the base model', () => {
    expect(resumePlan([], [promotion('cpt', ['games'], 100), promotion('sft', ['games'], 200)])).toEqual([
      { domain: 'games', adapterId: 'sft', source: 'promoted' },
    ]);
  });

  it('a promotion newer than the last switch wins, with that switch as the fallback', () => {
    expect(resumePlan([served('games', 'old', 100)], [promotion('new', ['games'], 200)])).toEqual([
      { domain: 'games', adapterId: 'new', source: 'promoted', fallbackAdapterId: 'old' },
    ]);
  });

  it('never undoes a rollback made after the promotion, to an adapter or to the base model', () => {
    expect(
      resumePlan(
        [served('games', 'prev', 300, 'rollback'), served('books', 'base', 300, 'rollback')],
        [promotion('bad', ['games', 'books'], 200)],
      ),
    ).toEqual([{ domain: 'games', adapterId: 'prev', source: 'served' }]);
  });

  it('ignores rejections and keeps domains apart', () => {
    expect(
      resumePlan(
        [served('films', 'f1', 100)],
        [
          promotion('g1', ['games'], 50),
          promotion('g2', ['games'], 500, 'rejected'),
          promotion('b1', ['books'], 60),
        ],
      ),
    ).toEqual([
      { domain: 'books', adapterId: 'b1', source: 'promoted' },
      { domain: 'films', adapterId: 'f1', source: 'served' },
      { domain: 'games', adapterId: 'g1', source: 'promoted' },
    ]);
  });

  it("resumes a legacy row (domain '') for the extra domains it is given", () => {
    expect(resumePlan([served('', 'legacy', 100)], [], ['games'])).toEqual([
      { domain: 'games', adapterId: 'legacy', source: 'served' },
    ]);
  });
});

describe('mergeAssignments: serving_events plus the events the evaluator has not stored yet', () => {
  it('a rollback published just before a restart, not stored yet, is resumed (not undone by the older promotion)', () => {
    // Stored: the promotion's switch of games to `bad`. On the topic only: the rollback to `prev`.
    const stored = [served('games', 'bad', 200)];
    const published = [served('games', 'bad', 200), served('games', 'prev', 300, 'rollback')];
    const promotions = [promotion('bad', ['games'], 150)];
    // From the table alone the rollback would be lost: `bad` would serve again.
    expect(resumePlan(stored, promotions)).toEqual([{ domain: 'games', adapterId: 'bad', source: 'served' }]);
    expect(resumePlan(mergeAssignments(stored, published), promotions)).toEqual([
      { domain: 'games', adapterId: 'prev', source: 'served' },
    ]);
  });

  it('a rollback to the base model published before a restart keeps the domain on the base', () => {
    const merged = mergeAssignments([served('books', 'b1', 100)], [served('books', 'base', 400, 'rollback')]);
    expect(resumePlan(merged, [promotion('b1', ['books'], 50)])).toEqual([]);
  });

  it('keeps, per domain, the newest of both, newest first; stored events equal to published ones are one', () => {
    const merged = mergeAssignments(
      [served('games', 'g2', 500), served('films', 'f1', 100), served('', 'legacy', 10)],
      [
        served('films', 'f1', 100),
        served('games', 'g1', 400),
        served('books', 'b1', 300),
        { ...served('books', 'b2', 600), event: 'load_failed' },
      ],
    );
    expect(merged.map((e) => [e.domain, e.adapter_id, e.ts_ms])).toEqual([
      ['games', 'g2', 500],
      ['books', 'b1', 300],
      ['films', 'f1', 100],
      ['', 'legacy', 10],
    ]);
  });

  it('on equal times the later event on the topic wins (a switch and a rollback in one millisecond)', () => {
    const merged = mergeAssignments([], [served('games', 'a', 100), served('games', 'b', 100, 'rollback')]);
    expect(merged.map((e) => e.adapter_id)).toEqual(['b']);
  });
});
