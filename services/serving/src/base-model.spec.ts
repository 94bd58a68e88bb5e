import { join } from 'node:path';
import { selectServingBackend } from './base-model';
import { loadServingConfig } from './config';

const STORIES = join(__dirname, '../../../../shared/models/stories260K/stories260K.bin');

describe('serving chooses its backend for its own base model and the ranking workload', () => {
  const saved = process.env.CPREC_BACKEND;
  afterEach(() => {
    if (saved === undefined) delete process.env.CPREC_BACKEND;
    else process.env.CPREC_BACKEND = saved;
  });

  it("asks `auto` for SERVING_BASE_MODEL's path and the infer workload", async () => {
    // CPREC_BACKEND short-cuts the measurement but records what the decision was asked for.
    process.env.CPREC_BACKEND = 'cpu';
    const config = loadServingConfig({
      SERVING_MODEL: 'checkpoint',
      SERVING_BASE_MODEL: STORIES,
      SERVING_BACKEND: 'auto',
    });
    const report = await selectServingBackend(config);
    expect(report.backend).toBe('cpu');
    expect(report.auto).toMatchObject({ from: 'env', model: STORIES, workload: 'infer' });
  });

  it('refuses a base model that does not exist, naming the setting', async () => {
    const config = loadServingConfig({
      SERVING_MODEL: 'checkpoint',
      SERVING_BASE_MODEL: '/nonexistent/model.gguf',
      SERVING_BACKEND: 'auto',
    });
    await expect(selectServingBackend(config)).rejects.toThrow(/SERVING_BASE_MODEL/);
  });
});
