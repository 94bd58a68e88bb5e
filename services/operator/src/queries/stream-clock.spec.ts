import { runningMax, streamTimeAt } from './stream-clock';

describe('stream clock', () => {
  const timeline = {
    interactions: 10,
    points: runningMax([
      { wallMs: 1_000, streamMs: 100 },
      { wallMs: 2_000, streamMs: 300 },
      { wallMs: 3_000, streamMs: 250 }, // a late event: the clock stays at 300
      { wallMs: 4_000, streamMs: 900 },
    ]),
  };

  it('keeps the newest event time seen so far at each ingestion moment', () => {
    expect(timeline.points.map((p) => p.streamMs)).toEqual([100, 300, 300, 900]);
  });

  it('places a wall-clock moment at the newest event time ingested by then', () => {
    expect(streamTimeAt(timeline, 999)).toBeNull();
    expect(streamTimeAt(timeline, 1_000)).toBe(100);
    expect(streamTimeAt(timeline, 2_500)).toBe(300);
    expect(streamTimeAt(timeline, 3_999)).toBe(300);
    expect(streamTimeAt(timeline, 10_000)).toBe(900);
    expect(streamTimeAt({ points: [], interactions: 0 }, 5)).toBeNull();
  });
});
