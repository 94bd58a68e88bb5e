import { buildReport, formatReport, sparsityBucket, type ExampleOutcome } from './report';

describe('sparsityBucket', () => {
  it.each([
    [0, '<5'],
    [4, '<5'],
    [5, '5-8'],
    [8, '5-8'],
    [9, '>=9'],
    [50, '>=9'],
  ])('%i → %s', (n, b) => expect(sparsityBucket(n)).toBe(b));
});

describe('buildReport', () => {
  const outcomes: ExampleOutcome[] = [
    { domain: 'games', historyLength: 2, firstValid: true, generatedRank: 1, likelihoodRank: 1 },
    { domain: 'games', historyLength: 3, firstValid: true, generatedRank: 3, likelihoodRank: 2 },
    { domain: 'games', historyLength: 6, firstValid: false, generatedRank: null, likelihoodRank: 7 },
    { domain: 'games', historyLength: 12, firstValid: true, generatedRank: null, likelihoodRank: 5 },
    { domain: 'steam', historyLength: 9, firstValid: true, generatedRank: 2, likelihoodRank: 1 },
  ];
  const report = buildReport(outcomes);

  it('computes per-domain, per-bucket and overall groups by hand', () => {
    const games = report.byDomain.games;
    expect(games.all.count).toBe(4);
    expect(games.all.valid).toBe(3);
    expect(games.all.correct).toBe(1);
    expect(games.all.validRatio).toBe(0.75);
    expect(games.all.hr1).toBe(0.25);
    expect(games.all.hr1OverValid).toBeCloseTo(1 / 3, 12);
    expect(games.all.generated.hr[3]).toBe(0.5);
    expect(games.all.generated.ndcg[3]).toBeCloseTo((1 + 0.5) / 4, 12);
    expect(games.all.likelihood?.hr[5]).toBe(0.75);
    expect(games.all.likelihood?.ndcg[3]).toBeCloseTo((1 + 1 / Math.log2(3)) / 4, 12);
    expect(games.buckets['<5'].count).toBe(2);
    expect(games.buckets['<5'].hr1).toBe(0.5);
    expect(games.buckets['5-8'].validRatio).toBe(0);
    expect(games.buckets['>=9'].count).toBe(1);
    expect(report.byDomain.steam.buckets['>=9'].generated.hr[3]).toBe(1);
    expect(report.overall.count).toBe(5);
    expect(report.overall.hr1).toBe(0.2);
    expect(report.overall.generated.hr[5]).toBe(0.6);
  });

  it('omits likelihood metrics unless every example has them', () => {
    const partial = buildReport([outcomes[0], { ...outcomes[1], likelihoodRank: undefined }]);
    expect(partial.overall.likelihood).toBeUndefined();
    expect(formatReport(partial)).not.toContain('lik');
  });

  it('rejects an inconsistent outcome', () => {
    expect(() =>
      buildReport([{ domain: 'd', historyLength: 1, firstValid: false, generatedRank: 1 }]),
    ).toThrow(/valid first/);
  });

  it('formats an aligned table with every group', () => {
    const table = formatReport(report);
    const lines = table.split('\n');
    expect(lines[0]).toMatch(/^domain\s+bucket\s+n\s+valid\s+HR@1\s+HR@1\/valid\s+HR@1 gen/);
    expect(lines).toHaveLength(2 + 4 + 4 + 1);
    expect(new Set(lines.map((l) => l.length)).size).toBe(1);
    expect(lines[lines.length - 1]).toMatch(/^ALL\s+all\s+5\s+0\.8000\s+0\.2000\s+0\.2500/);
  });
});
