import { totalmem } from 'node:os';
import type { DataId, TensorInfo } from '@tensorflow/tfjs-core';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';

/**
 * Recycles the float32 result arrays of the native kernels on a tfjs `cpu` backend.
 *
 * Why: tfjs gives every op result a fresh typed array, and V8 frees it only when a garbage
 * collection finds it dead. A SmolLM2 LoRA step at batch 4 × 256 allocated ~3.4 GB of results;
 * V8 starts a full mark-compact every 64 MB of new ArrayBuffer memory (its external-memory soft
 * limit), so ~50 major collections ran per step, and every array was zero-filled by calloc first
 * (and page-faulted in when the heap grew). perf showed garbage collection at ~18% and
 * allocation (memset, page clearing) at ~5% of the step's CPU time. A step allocates the same
 * shapes as the last one, so a pool keyed by length serves nearly all of them.
 *
 * Safety: an array is recycled only if it was allocated here (`allocate`) and no code other than
 * the native kernels ever saw it. The backend's `data.get` — the path of `dataSync`, `readSync`,
 * the JS kernels (some store views of their input as results, e.g. a simple `Slice`) and anything
 * else — marks the array as escaped for good; the native kernels read through `rawValues`,
 * which does not, and never keep a reference past their call. A recycled array's old contents
 * are not cleared: callers must write every element.
 *
 * Size: a training step frees nearly everything it allocated at its end (the forward pass's
 * activations live until the backward pass is done), so the pool must hold about one step's
 * results — 3 GB for SmolLM2 at batch 4 × 256 — to serve the next one; with 2 GB it held two
 * thirds and the rest went back to allocation and the garbage collector. The memory is not
 * extra: without the pool those arrays stay allocated until V8 collects them, and glibc keeps
 * the heap anyway (kernels.cc, TuneMalloc). At most `CPREC_BUFFER_POOL_MB` MiB of free arrays
 * are kept (default a quarter of the machine's memory, at most 8 GiB; 0 turns recycling off);
 * `drainBufferPool` lets them go.
 */
interface TensorData {
  values: unknown;
  refCount: number;
}

interface Storage {
  get(dataId: DataId): TensorData | undefined;
  has(dataId: DataId): boolean;
}

interface Pool {
  rawGet(dataId: DataId): TensorData | undefined;
  /** Runs f with the backend's data access not marking anything as escaped. */
  withRaw<T>(f: () => T): T;
  owned: WeakSet<Float32Array>;
  free: Map<number, Float32Array[]>;
  bytes: number;
  limit: number;
  stats: BufferPoolStats;
}

export interface BufferPoolStats {
  /** Arrays served from the pool. */
  reused: number;
  /** Arrays allocated afresh. */
  allocated: number;
  /** Arrays returned to the pool. */
  recycled: number;
}

const pools = new WeakMap<MathBackendCPU, Pool | null>();

function limitBytes(): number {
  const setting = process.env.CPREC_BUFFER_POOL_MB;
  if (setting === undefined) return Math.min(totalmem() / 4, 8 * 1024 ** 3);
  const mb = Number(setting);
  return Number.isFinite(mb) && mb > 0 ? mb * 1024 * 1024 : 0;
}

function poolOf(backend: MathBackendCPU): Pool | null {
  let pool = pools.get(backend);
  if (pool !== undefined) return pool;
  const limit = limitBytes();
  pool = limit > 0 ? install(backend, limit) : null;
  pools.set(backend, pool);
  return pool;
}

/** Wraps the backend instance's data access so arrays seen outside the native kernels escape. */
function install(backend: MathBackendCPU, limit: number): Pool {
  const storage = backend.data as unknown as Storage;
  const rawGet = storage.get.bind(storage);
  const pool: Pool = {
    rawGet,
    withRaw: (f) => f(),
    owned: new WeakSet(),
    free: new Map(),
    bytes: 0,
    limit,
    stats: { reused: 0, allocated: 0, recycled: 0 },
  };
  const escapingGet = (dataId: DataId): TensorData | undefined => {
    const data = rawGet(dataId);
    if (data && data.values instanceof Float32Array) pool.owned.delete(data.values);
    return data;
  };
  storage.get = escapingGet;
  pool.withRaw = <T>(f: () => T): T => {
    const outer = storage.get; // calls nest (Reshape's incRef)
    storage.get = rawGet;
    try {
      return f();
    } finally {
      storage.get = outer;
    }
  };
  // The backend's own bookkeeping reads the data only for reference counts: not an escape.
  const refCount = backend.refCount.bind(backend);
  const incRef = backend.incRef.bind(backend);
  const decRef = backend.decRef.bind(backend);
  const dispose = backend.disposeData.bind(backend);
  backend.refCount = (dataId: DataId): number => pool.withRaw(() => refCount(dataId));
  backend.incRef = (dataId: DataId): void => pool.withRaw(() => incRef(dataId));
  backend.decRef = (dataId: DataId): void => pool.withRaw(() => decRef(dataId));
  backend.disposeData = (dataId: DataId, force = false): boolean => {
    const data = storage.has(dataId) ? rawGet(dataId) : undefined;
    const values =
      data && data.values instanceof Float32Array && pool.owned.has(data.values) ? data.values : null;
    const released = pool.withRaw(() => dispose(dataId, force));
    if (values && !storage.has(dataId)) release(pool, values);
    return released;
  };
  return pool;
}

function release(pool: Pool, values: Float32Array): void {
  if (pool.bytes + values.byteLength > pool.limit) return; // left to the garbage collector
  let list = pool.free.get(values.length);
  if (!list) pool.free.set(values.length, (list = []));
  list.push(values);
  pool.owned.add(values);
  pool.bytes += values.byteLength;
  pool.stats.recycled++;
}

/**
 * A float32 array of `length` for a native kernel's result on `backend`: a recycled one (old
 * contents: the kernel must write every element) or a new one.
 */
export function allocate(backend: MathBackendCPU, length: number): Float32Array {
  const pool = poolOf(backend);
  if (!pool || length === 0) return new Float32Array(length);
  const list = pool.free.get(length);
  const reused = list?.pop();
  if (reused) {
    pool.bytes -= reused.byteLength;
    pool.stats.reused++;
    return reused;
  }
  const fresh = new Float32Array(length);
  pool.owned.add(fresh);
  pool.stats.allocated++;
  return fresh;
}

/** A tensor's values for a native kernel's input, without marking them as escaped. */
export function rawValues(backend: MathBackendCPU, t: TensorInfo): unknown {
  const pool = poolOf(backend);
  const data = pool ? pool.rawGet(t.dataId) : backend.data.get(t.dataId);
  if (!data) throw new Error('tensor data not found on the cpu backend');
  return data.values;
}

/** Counters of the backend's pool (zeros when recycling is off), for tests and profiles. */
export function bufferPoolStats(backend: MathBackendCPU): BufferPoolStats {
  return { ...(poolOf(backend)?.stats ?? { reused: 0, allocated: 0, recycled: 0 }) };
}

/** Lets the garbage collector have every pooled array (e.g. after training, before serving). */
export function drainBufferPool(backend: MathBackendCPU): void {
  const pool = poolOf(backend);
  if (!pool) return;
  pool.free.clear();
  pool.bytes = 0;
}

/**
 * Runs a JS kernel that only shares its input's data by reference count (Reshape) without marking
 * that data as escaped: such kernels read the backend's record of the input, never its values.
 */
export function withRawAccess<T>(backend: MathBackendCPU, f: () => T): T {
  const pool = poolOf(backend);
  return pool ? pool.withRaw(f) : f();
}
