import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
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
 *
 * Transpiling the tree (≈ 450 files, 5.6 MB) takes 5–9 s, paid by every process (and every Jest
 * test file) that trains, so the CommonJS output is cached on disk (`gradientCachePath`), keyed
 * by the tfjs-core and TypeScript versions and the transpile options. The cache only saves the
 * transpiling: the same text is evaluated either way. A missing, unreadable or incomplete cache
 * is rebuilt by transpiling; a cache that cannot be written (read-only install) is just not kept.
 */
let registered = false;

const COMPILER_OPTIONS: ts.CompilerOptions = {
  module: ts.ModuleKind.CommonJS,
  target: ts.ScriptTarget.ES2020,
  esModuleInterop: true,
};

/** Bump when the cached text would change for the same versions (e.g. new transpile options). */
const CACHE_FORMAT = 1;

interface GradientCache {
  format: number;
  tfjsCore: string;
  typescript: string;
  /** CommonJS text by path relative to tfjs-core's dist directory (posix separators). */
  files: Record<string, string>;
}

function tfjsCoreDir(): { distDir: string; packageDir: string; version: string } {
  const packageJson = require.resolve('@tensorflow/tfjs-core/package.json');
  const packageDir = dirname(packageJson);
  const { version } = JSON.parse(readFileSync(packageJson, 'utf8')) as { version: string };
  return { distDir: dirname(require.resolve('@tensorflow/tfjs-core')), packageDir, version };
}

/**
 * Where the transpiled gradients are cached: `node_modules/.cache/cprec/` of the node_modules that
 * holds tfjs-core (the usual home of tool caches, gone with a fresh `npm ci`), or
 * $CPREC_TFJS_GRADIENT_CACHE if set; `off` there disables the cache.
 */
export function gradientCachePath(): string | null {
  const fromEnv = process.env.CPREC_TFJS_GRADIENT_CACHE;
  if (fromEnv === 'off') return null;
  const { packageDir, version } = tfjsCoreDir();
  const file = `tfjs-gradients-${version}-ts${ts.version}-f${CACHE_FORMAT}.json`;
  if (fromEnv) return join(resolve(fromEnv), file);
  // packageDir = <node_modules>/@tensorflow/tfjs-core
  return join(dirname(dirname(packageDir)), '.cache', 'cprec', file);
}

function readCache(path: string | null, tfjsCore: string): Record<string, string> | null {
  if (!path) return null;
  try {
    const cache = JSON.parse(readFileSync(path, 'utf8')) as GradientCache;
    if (cache.format !== CACHE_FORMAT || cache.tfjsCore !== tfjsCore || cache.typescript !== ts.version)
      return null;
    return cache.files;
  } catch {
    return null; // missing or unreadable: rebuild
  }
}

function writeCache(path: string | null, tfjsCore: string, files: Record<string, string>): void {
  if (!path) return;
  // Unique temporary name + rename: concurrent writers (Jest workers) never leave a torn file.
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    mkdirSync(dirname(path), { recursive: true });
    const cache: GradientCache = { format: CACHE_FORMAT, tfjsCore, typescript: ts.version, files };
    writeFileSync(tmp, JSON.stringify(cache));
    renameSync(tmp, path);
  } catch {
    // Read-only install, full disk, a path that is not a directory: work without the cache.
    try {
      rmSync(tmp, { force: true });
    } catch {
      // nothing was written
    }
  }
}

export function registerTfjsGradients(): void {
  if (registered) return;
  const { distDir, version } = tfjsCoreDir();
  const cachePath = gradientCachePath();
  const cached = readCache(cachePath, version);
  const files: Record<string, string> = { ...(cached ?? {}) };
  let transpiled = 0;
  const modules = new Map<string, { exports: unknown }>();
  const load = (file: string): unknown => {
    const known = modules.get(file);
    if (known) return known.exports;
    const module = { exports: {} as unknown };
    modules.set(file, module);
    const key = relative(distDir, file).split('\\').join('/');
    let outputText = files[key];
    if (outputText === undefined) {
      const source = readFileSync(file, 'utf8');
      outputText = ts.transpileModule(source, {
        compilerOptions: COMPILER_OPTIONS,
        fileName: file,
      }).outputText;
      files[key] = outputText;
      transpiled++;
    }
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
  if (transpiled > 0) writeCache(cachePath, version, files);
  registered = true;
}
