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
 * are not cleared: callers must write every element. `CPREC_BUFFER_POOL_MB=0` turns recycling
 * off; the pool holds at most that many MiB of free arrays (default 2048).
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
  const mb = Number(process.env.CPREC_BUFFER_POOL_MB ?? 2048);
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
    owned: new WeakSet(),
    free: new Map(),
    bytes: 0,
    limit,
    stats: { reused: 0, allocated: 0, recycled: 0 },
  };
  storage.get = (dataId: DataId): TensorData | undefined => {
    const data = rawGet(dataId);
    if (data && data.values instanceof Float32Array) pool.owned.delete(data.values);
    return data;
  };
  // The backend's own reference counting goes around the escape mark (it does not expose values).
  backend.refCount = (dataId: DataId): number => (storage.has(dataId) ? (rawGet(dataId)?.refCount ?? 0) : 0);
  backend.incRef = (dataId: DataId): void => {
    const data = rawGet(dataId);
    if (data) data.refCount++;
  };
  backend.decRef = (dataId: DataId): void => {
    const data = storage.has(dataId) ? rawGet(dataId) : undefined;
    if (data) data.refCount--;
  };
  const dispose = backend.disposeData.bind(backend);
  backend.disposeData = (dataId: DataId, force = false): boolean => {
    const data = storage.has(dataId) ? rawGet(dataId) : undefined;
    const values =
      data &&
      data.values instanceof Float32Array &&
      pool.owned.has(data.values) &&
      (force || data.refCount <= 1)
        ? data.values
        : null;
    const released = dispose(dataId, force);
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
