import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { requireInfra } from '../support/infra';

const REPO_ROOT = resolve(__dirname, '../..');
const STATE_DIR = process.env.CPREC_STATE_DIR ?? join(REPO_ROOT, '.cprec');

describe('infra/local scripts', () => {
  it('leave the infra lock free once the servers run (the daemons must not inherit it)', async () => {
    await requireInfra();
    const lock = join(STATE_DIR, 'infra.lock');
    expect(existsSync(lock)).toBe(true);
    // flock -n fails at once if any process, e.g. a broker started by `up`, still holds the lock;
    // then the next `up` (a test restarting a killed server, an operator) would wait and time out.
    expect(() => execFileSync('flock', ['-n', lock, 'true'])).not.toThrow();
    // And `status` answers without waiting.
    execFileSync('bash', [join(REPO_ROOT, 'infra', 'local', 'status')], { stdio: 'ignore', timeout: 30_000 });
  });
});
