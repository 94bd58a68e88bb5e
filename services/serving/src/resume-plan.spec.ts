import type { ServingEventRecord } from '@cprec/clickhouse';
import { resumePlan } from './resume-plan';

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
