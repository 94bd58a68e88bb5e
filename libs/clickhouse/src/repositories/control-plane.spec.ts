import { createClickHouse } from '../client';
import { ControlPlaneRepository } from './control-plane';

/**
 * Input checks that happen before anything is sent. The handle points at a port nothing listens
 * on (and is never probed: inline value mode), so a test passes only if the repository throws
 * before reaching the network. Reading and writing are covered against a real server in
 * test/operator/control-plane.test.ts.
 */
const ch = createClickHouse({
  url: 'http://127.0.0.1:9',
  database: 'unused',
  username: 'default',
  password: '',
  requestTimeoutMs: 1000,
  valueMode: 'inline',
});
const repo = new ControlPlaneRepository(ch);

afterAll(() => ch.close());

describe('ControlPlaneRepository input checks', () => {
  const round = {
    round_id: 'r',
    state: 'queued',
    step: 0,
    total_steps: 0,
    loss: null,
    lr: null,
    message: '',
    target_domains: [],
    requested_by: 'op',
    created_ms: 0,
    updated_ms: 0,
  };

  it.each([-1, 1.5, Number.NaN, 4294967296 * 1000])('rejects updated_ms %p', async (ms) => {
    await expect(repo.insertRoundState({ ...round, updated_ms: ms })).rejects.toThrow(RangeError);
  });

  it('rejects a bad step timestamp naming the round and step', async () => {
    await expect(
      repo.insertRoundSteps([
        { round_id: 'r7', phase: 'stable', step: 3, loss: 1, lr: 1, tokens: 0, ts_ms: -5 },
      ]),
    ).rejects.toThrow(/round r7 step 3/);
  });

  it.each([0, -1, 2.5])('rejects limit %p', async (n) => {
    await expect(repo.listRounds({ limit: n })).rejects.toThrow(/limit/);
  });
});
