import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import * as ts from 'typescript';

/**
 * Registers tfjs-core's gradient definitions in Node.
 *
 * Why hand-written: `@tensorflow/tfjs-core`'s CommonJS bundle (`tf-core.node.js`) does not contain
 * the gradient configs — only the ES-module build (`dist/register_all_gradients.js` and its
 * imports) does, and those files use extension-less relative specifiers that Node's ESM loader
 * rejects. The union package `@tensorflow/tfjs` bundles them but is not a dependency. So this loads
 * that ESM tree by transpiling each file to CommonJS with the TypeScript compiler. The extra copies
 * of core modules it creates are harmless: tfjs keeps the engine, kernel and gradient registries
 * on the global object and defines `Tensor[Symbol.hasInstance]` for exactly this multi-copy case.
 */
let registered = false;

export function registerTfjsGradients(): void {
  if (registered) return;
  const coreEntry = require.resolve('@tensorflow/tfjs-core');
  const distDir = dirname(coreEntry);
  const cache = new Map<string, { exports: unknown }>();
  const load = (file: string): unknown => {
    const cached = cache.get(file);
    if (cached) return cached.exports;
    const module = { exports: {} as unknown };
    cache.set(file, module);
    const source = readFileSync(file, 'utf8');
    const { outputText } = ts.transpileModule(source, {
      compilerOptions: {
        module: ts.ModuleKind.CommonJS,
        target: ts.ScriptTarget.ES2020,
        esModuleInterop: true,
      },
      fileName: file,
    });
    const localRequire = (specifier: string): unknown => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- the transpiled module's own require
      if (!specifier.startsWith('.')) return require(specifier);
      const target = resolve(dirname(file), specifier);
      return load(target.endsWith('.js') ? target : `${target}.js`);
    };
    // Evaluating the transpiled module is the point (tfjs-core ships its gradients only as ES modules).
    const evaluate = new Function('require', 'module', 'exports', outputText) as (
      r: (s: string) => unknown,
      m: { exports: unknown },
      e: unknown,
    ) => void;
    evaluate(localRequire, module, module.exports);
    return module.exports;
  };
  load(join(distDir, 'register_all_gradients.js'));
  registered = true;
}
