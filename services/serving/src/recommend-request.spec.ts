import { parseBody, RecommendRequestSchema, RollbackRequestSchema } from './recommend-request';

const parse = (body: unknown) => parseBody(RecommendRequestSchema, body);

describe('POST /v1/recommend validation', () => {
  it('accepts a user id or a history, with defaults for k and n_candidates', () => {
    expect(parse({ user_id: 'u1', domain: 'books' })).toEqual({
      ok: true,
      value: { user_id: 'u1', domain: 'books', k: 10, n_candidates: 20 },
    });
    const r = parse({ history: ['a', 'b'], domain: 'books', candidate_ids: ['c', 'd'], k: 1 });
    expect(r).toMatchObject({ ok: true, value: { history: ['a', 'b'], candidate_ids: ['c', 'd'], k: 1 } });
  });

  it.each([
    [{ domain: 'books' }, /user_id: give a user_id .* or an explicit history/],
    [{ user_id: 'u', domain: 'Books!' }, /domain: must be a lowercase slug/],
    [{ user_id: 'u' }, /domain:/],
    [{ user_id: 'u', domain: 'books', k: 0 }, /k: /],
    [{ user_id: 'u', domain: 'books', k: 2.5 }, /k: /],
    [{ user_id: 'u', domain: 'books', candidate_ids: [] }, /candidate_ids: candidate_ids must not be empty/],
    [{ user_id: 'u', domain: 'books', candidate_ids: ['a', 'a'] }, /must not repeat/],
    [{ history: 'a,b', domain: 'books' }, /history: /],
    [{ user_id: 'u', domain: 'books', extra: 1 }, /extra|unrecognized/i],
    [[1, 2], /must be a JSON object/],
    [undefined, /must be a JSON object/],
  ])('refuses %j with a message', (body, message) => {
    const r = parse(body);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toMatch(message);
  });

  it('validates rollback bodies: the domain is required (one adapter per domain)', () => {
    expect(parseBody(RollbackRequestSchema, { domain: 'books' })).toEqual({
      ok: true,
      value: { domain: 'books' },
    });
    expect(parseBody(RollbackRequestSchema, {})).toEqual({
      ok: false,
      message: expect.stringMatching(/^domain: /),
    });
    expect(parseBody(RollbackRequestSchema, { domain: 'books', to_adapter_id: '' }).ok).toBe(false);
  });
});
