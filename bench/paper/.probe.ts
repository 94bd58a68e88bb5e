import { KVCache, loadBaseModel, LlamaModel, selectBackend } from '@cprec/lm';
const cpu = (f: () => void) => {
  const c0 = process.cpuUsage();
  const t0 = Date.now();
  f();
  const d = process.cpuUsage(c0);
  return `${((d.user + d.system) / 1e6).toFixed(2)} cpu-s ${((Date.now() - t0) / 1000).toFixed(2)} wall`;
};
(async () => {
  const path = '/work/shared/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf';
  const b = await selectBackend('auto', { model: path, workload: 'train' });
  console.log(b.backend);
  const base = await loadBaseModel(path);
  const model = new LlamaModel(base.weights);
  const prompt = Array.from({ length: 364 }, (_, i) => 100 + (i % 1000));
  for (const B of [1, 1, 4]) {
    const cache = new KVCache(model.config.nLayers, B);
    let msg = cpu(() =>
      model
        .forward(
          Array.from({ length: B }, () => prompt),
          { cache, lastOnly: true },
        )
        .dispose(),
    );
    console.log(`prefill B=${B}: ${msg}`);
    msg = cpu(() => {
      for (let s = 0; s < 10; s++)
        model
          .forward(
            Array.from({ length: B }, () => [5]),
            { cache, lastOnly: true },
          )
          .dispose();
    });
    console.log(`decode 10 steps B=${B}: ${msg}`);
    cache.dispose();
  }
})();
