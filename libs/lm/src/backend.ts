import * as tf from '@tensorflow/tfjs-core';

export type BackendPreference = 'auto' | 'tensorflow-gpu' | 'tensorflow' | 'cpu' | 'wasm';

export interface BackendReport {
  /** tfjs backend name now active (`tensorflow`, `cpu`, `wasm`). */
  backend: string;
  /** Which package provided it. */
  source: string;
  /** Whether `registerNativeKernels()` from ./kernels registered native cpu kernels. */
  nativeKernels: boolean;
  /** Whether the optional @tensorflow/tfjs-node(-gpu) packages can be loaded. */
  tfjsNode: boolean;
  tfjsNodeGpu: boolean;
  /** Why preferred choices were skipped. */
  notes: string[];
}

/**
 * Loads an optional module by name. A plain `require` with a variable name so TypeScript does not
 * demand the (optional, usually absent) package at compile time.
 */
function tryRequire(name: string): { ok: true; mod: unknown } | { ok: false; error: string } {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return { ok: true, mod: require(name) as unknown };
  } catch (e) {
    return { ok: false, error: e instanceof Error ? e.message.split('\n')[0] : String(e) };
  }
}

function canResolve(name: string): boolean {
  try {
    require.resolve(name);
    return true;
  } catch {
    return false;
  }
}

/** Calls `registerNativeKernels()` from libs/lm/src/kernels when that module exists. */
function loadNativeKernels(notes: string[]): boolean {
  const r = tryRequire('./kernels');
  if (!r.ok) {
    notes.push(`native kernels not loaded: ${r.error}`);
    return false;
  }
  const reg = (r.mod as { registerNativeKernels?: unknown }).registerNativeKernels;
  if (typeof reg !== 'function') {
    notes.push('native kernels module has no registerNativeKernels()');
    return false;
  }
  try {
    // Returns { loaded, reason?, kernels } (NativeKernelStatus); a bare boolean is accepted too.
    const res: unknown = (reg as () => unknown)();
    const loaded =
      typeof res === 'boolean'
        ? res
        : typeof res === 'object' && res !== null && (res as { loaded?: unknown }).loaded === true;
    if (!loaded) {
      const reason =
        typeof res === 'object' && res !== null ? (res as { reason?: unknown }).reason : undefined;
      notes.push(`native kernels not registered${typeof reason === 'string' ? `: ${reason}` : ''}`);
    }
    return loaded;
  } catch (e) {
    notes.push(`registerNativeKernels() failed: ${e instanceof Error ? e.message : String(e)}`);
    return false;
  }
}

let lastReport: BackendReport | null = null;

/**
 * Chooses the fastest available backend: tfjs-node-gpu, tfjs-node (optional packages), then the
 * cpu backend with native kernels when present, else wasm. A specific preference is tried first and
 * falls back along the same chain. Returns what is in use (also kept for `backendReport()`).
 */
export async function selectBackend(
  preference: BackendPreference = 'auto',
  opts: { nativeKernels?: boolean } = {},
): Promise<BackendReport> {
  const notes: string[] = [];
  // CPREC_NATIVE_KERNELS=0 keeps the plain JS cpu kernels (for comparisons and debugging).
  const wantNative = opts.nativeKernels ?? process.env.CPREC_NATIVE_KERNELS !== '0';
  const tfjsNodeGpu = canResolve('@tensorflow/tfjs-node-gpu');
  const tfjsNode = canResolve('@tensorflow/tfjs-node');
  const chain: BackendPreference[] =
    preference === 'auto'
      ? ['tensorflow-gpu', 'tensorflow', 'cpu', 'wasm']
      : [
          preference,
          ...(['tensorflow-gpu', 'tensorflow', 'cpu', 'wasm'] as BackendPreference[]).filter(
            (p) => p !== preference,
          ),
        ];
  for (const choice of chain) {
    if (choice === 'tensorflow-gpu' || choice === 'tensorflow') {
      const pkg = choice === 'tensorflow-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
      if (!canResolve(pkg)) {
        if (preference === choice) notes.push(`${pkg} is not installed`);
        continue;
      }
      const r = tryRequire(pkg);
      if (!r.ok) {
        notes.push(`${pkg} failed to load: ${r.error}`);
        continue;
      }
      // tfjs-node registers into its own copy of tfjs-core unless versions dedupe to ours.
      if (tf.findBackend('tensorflow') && (await tf.setBackend('tensorflow'))) {
        lastReport = {
          backend: 'tensorflow',
          source: pkg,
          nativeKernels: false,
          tfjsNode,
          tfjsNodeGpu,
          notes,
        };
        return lastReport;
      }
      notes.push(
        `${pkg} loaded but its backend is not registered with this @tensorflow/tfjs-core (version mismatch?)`,
      );
      continue;
    }
    if (choice === 'cpu') {
      await import('@tensorflow/tfjs-backend-cpu');
      if (await tf.setBackend('cpu')) {
        const nativeKernels = wantNative ? loadNativeKernels(notes) : false;
        if (!wantNative) notes.push('native kernels disabled by request');
        lastReport = {
          backend: 'cpu',
          source: nativeKernels
            ? '@tensorflow/tfjs-backend-cpu + cprec native kernels'
            : '@tensorflow/tfjs-backend-cpu',
          nativeKernels,
          tfjsNode,
          tfjsNodeGpu,
          notes,
        };
        return lastReport;
      }
    }
    if (choice === 'wasm') {
      try {
        await import('@tensorflow/tfjs-backend-wasm');
        if (await tf.setBackend('wasm')) {
          lastReport = {
            backend: 'wasm',
            source: '@tensorflow/tfjs-backend-wasm',
            nativeKernels: false,
            tfjsNode,
            tfjsNodeGpu,
            notes,
          };
          return lastReport;
        }
      } catch (e) {
        notes.push(`wasm backend failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }
  throw new Error(`no tfjs backend could be initialised: ${notes.join('; ')}`);
}

/** The last `selectBackend` result, or a description of whatever tfjs is using now. */
export function backendReport(): BackendReport {
  return (
    lastReport ?? {
      backend: tf.getBackend(),
      source: 'not selected through selectBackend',
      nativeKernels: false,
      tfjsNode: canResolve('@tensorflow/tfjs-node'),
      tfjsNodeGpu: canResolve('@tensorflow/tfjs-node-gpu'),
      notes: [],
    }
  );
}
