/** What identifies an adapter that can serve: the promoted artefact (or the base model). */
export interface AdapterRef {
  readonly adapterId: string;
  /** Artefact URI; '' for the base model. */
  readonly uri: string;
  /** sha256 the artefact must have; '' for the base model. */
  readonly sha256: string;
}

export const BASE_REF: AdapterRef = { adapterId: 'base', uri: '', sha256: '' };

const isBase = (ref: AdapterRef): boolean => ref.adapterId === BASE_REF.adapterId && ref.uri === '';
const keyOf = (ref: AdapterRef): string => `${ref.adapterId}\u0000${ref.sha256}`;

/** Something that serves and must be released when replaced. */
export interface Disposable {
  dispose(): void;
}

export interface ServingEvent {
  event: 'switch' | 'rollback' | 'load_failed';
  /** The target domain whose adapter changed (or failed to). */
  domain: string;
  adapter_id: string;
  previous_adapter_id: string;
  detail: string;
  ts_ms: number;
}

/** The manager's collaborators, so its state machine is tested without files, models or servers. */
export interface AdapterManagerPorts<T extends Disposable> {
  /**
   * Loads and verifies an adapter (artefact checksum, model load, smoke inference) and returns it
   * ready to serve; throws with the reason when it must not serve.
   */
  load(ref: AdapterRef): Promise<T>;
  /**
   * Records a switch / rollback / refused load (published on the serving-events topic, stored in
   * serving_events by the evaluator). A failure here is logged, not fatal.
   */
  record(event: ServingEvent): Promise<void>;
  /** Looks up an adapter by id for a named rollback to one not in the history (e.g. the adapters table). */
  resolve?(adapterId: string): Promise<AdapterRef | null>;
  now?(): number;
  onError?(message: string): void;
}

export type SwitchOutcome =
  | { ok: true; domain: string; adapterId: string; previousAdapterId: string; changed: boolean }
  | { ok: false; domain: string; adapterId: string; error: string };

export class RollbackRefusedError extends Error {}

/** What serves one domain, as `AdapterManager.current` reports it. */
export interface Serving<T> {
  ref: AdapterRef;
  value: T;
}

/**
 * Which adapter serves each target domain, and how that changes: hot swap on promotion, rollback
 * on request — per domain, so promoting the Games adapter never changes what answers Books.
 *
 * - The base model is loaded once (`start`) and shared: every domain without an adapter of its own
 *   is answered by it, and it is never disposed before `close`.
 * - A loaded adapter is shared too: one serving two domains (a multi-domain CPT adapter) is loaded
 *   once and disposed when the last domain stops using it.
 * - A domain's serving adapter is one map entry; a swap loads and verifies the new one completely
 *   while the old keeps answering, then replaces the entry in one assignment, so a request sees
 *   either the old or the new adapter, never a half-loaded one. The old one is released after the
 *   switch: a batch already handed to it was posted to its scoring worker before the dispose
 *   message, and a worker handles messages in order (or, on the serving thread, scoring is
 *   synchronous, so no request is inside it then).
 * - A refused load leaves the domain's adapter serving and records `load_failed` with the reason.
 * - History, per domain: every adapter replaced by a promotion is pushed on the domain's stack;
 *   `rollback(domain)` returns to the top of it (re-loaded and re-verified from its artefact
 *   unless another domain still holds it loaded), `rollback(domain, id)` to a named adapter — the
 *   stack is cut back to it when it is there, otherwise it is resolved through `ports.resolve`.
 * - Operations (of every domain) run one at a time in arrival order, a single queue: they share
 *   the loaded adapters, and a promotion arriving during a rollback cannot interleave with it.
 */
export class AdapterManager<T extends Disposable> {
  private base: Serving<T> | null = null;
  private readonly slots = new Map<string, Serving<T>>();
  private readonly histories = new Map<string, AdapterRef[]>();
  /** Loaded adapters by id and sha256, with how many domains use each. */
  private readonly loaded = new Map<string, { value: T; users: number }>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly ports: AdapterManagerPorts<T>) {}

  /** What answers `domain`: its adapter, else the shared base model (null before `start`). */
  current(domain: string): Serving<T> | null {
    return this.slots.get(domain) ?? this.base;
  }

  /** The shared base model (null before `start`). */
  baseModel(): Serving<T> | null {
    return this.base;
  }

  /** Domains with an adapter or a rollback history, sorted. */
  domains(): string[] {
    return [...new Set([...this.slots.keys(), ...this.histories.keys()])].sort();
  }

  /** Adapters a plain rollback of `domain` would return to, most recent first. */
  historyIds(domain: string): string[] {
    return (this.histories.get(domain) ?? []).map((r) => r.adapterId).reverse();
  }

  /** Loads the shared base model; every domain is answered by it until it gets an adapter. */
  start(baseRef: AdapterRef = BASE_REF): Promise<void> {
    return this.enqueue(async () => {
      const value = await this.ports.load(baseRef);
      this.base?.value.dispose();
      this.base = { ref: baseRef, value };
    });
  }

  /**
   * Serves `ref` for `domain` without recording a switch: the adapter that served the domain
   * before a restart (serving_events already says so). Throws when it cannot be loaded.
   */
  resume(domain: string, ref: AdapterRef): Promise<void> {
    return this.enqueue(async () => {
      const value = await this.acquire(ref);
      this.replace(domain, ref, value);
    });
  }

  /** Hot swap of `domain` to a promoted adapter. Resolves with the outcome (never rejects on a refused load). */
  promote(domain: string, ref: AdapterRef): Promise<SwitchOutcome> {
    return this.enqueue(async () => {
      const previous = this.current(domain)?.ref ?? null;
      if (previous && previous.adapterId === ref.adapterId && previous.sha256 === ref.sha256)
        return {
          ok: true,
          domain,
          adapterId: ref.adapterId,
          previousAdapterId: previous.adapterId,
          changed: false,
        };
      const loaded = await this.tryAcquire(domain, ref, previous);
      if (!loaded.ok) return loaded;
      if (previous) this.historyOf(domain).push(previous);
      this.replace(domain, ref, loaded.value);
      await this.record('switch', domain, ref.adapterId, previous?.adapterId ?? '', 'promoted');
      return {
        ok: true,
        domain,
        adapterId: ref.adapterId,
        previousAdapterId: previous?.adapterId ?? '',
        changed: true,
      };
    });
  }

  /**
   * `domain` back to its previous adapter, or to `toAdapterId` (`base`: the base model alone).
   * Throws RollbackRefusedError when there is nothing to roll back to or the adapter is unknown; a
   * target that fails to load is recorded (`load_failed`) and reported as not ok, the domain's
   * adapter keeps serving. Other domains are not touched.
   */
  rollback(domain: string, toAdapterId?: string, reason = 'rollback requested'): Promise<SwitchOutcome> {
    return this.enqueue(async () => {
      const previous = this.current(domain)?.ref ?? null;
      const history = this.histories.get(domain) ?? [];
      let target: AdapterRef;
      let keep: number;
      if (toAdapterId === undefined) {
        if (history.length === 0)
          throw new RollbackRefusedError(
            `nothing to roll back to in domain "${domain}": no previous adapter has served it`,
          );
        keep = history.length - 1;
        target = history[keep];
      } else {
        if (previous?.adapterId === toAdapterId)
          return { ok: true, domain, adapterId: toAdapterId, previousAdapterId: toAdapterId, changed: false };
        const at = history.map((r) => r.adapterId).lastIndexOf(toAdapterId);
        if (at >= 0) {
          keep = at;
          target = history[at];
        } else {
          const resolved =
            toAdapterId === BASE_REF.adapterId
              ? BASE_REF
              : ((await this.ports.resolve?.(toAdapterId)) ?? null);
          if (!resolved)
            throw new RollbackRefusedError(`unknown adapter "${toAdapterId}": cannot roll back to it`);
          keep = history.length;
          target = resolved;
        }
      }
      const loaded = await this.tryAcquire(domain, target, previous);
      if (!loaded.ok) return loaded;
      history.length = keep;
      this.replace(domain, target, loaded.value);
      await this.record('rollback', domain, target.adapterId, previous?.adapterId ?? '', reason);
      return {
        ok: true,
        domain,
        adapterId: target.adapterId,
        previousAdapterId: previous?.adapterId ?? '',
        changed: true,
      };
    });
  }

  /** Disposes every loaded adapter and the base after pending operations finish. */
  async close(): Promise<void> {
    await this.enqueue(async () => {
      for (const { value } of this.loaded.values()) value.dispose();
      this.loaded.clear();
      this.slots.clear();
      this.base?.value.dispose();
      this.base = null;
    });
  }

  private historyOf(domain: string): AdapterRef[] {
    let history = this.histories.get(domain);
    if (!history) this.histories.set(domain, (history = []));
    return history;
  }

  /** The loaded value of `ref`: the shared base, an adapter another domain holds, or a fresh load. */
  private async acquire(ref: AdapterRef): Promise<T> {
    if (isBase(ref)) {
      if (!this.base) throw new Error('the base model is not loaded yet');
      return this.base.value;
    }
    const held = this.loaded.get(keyOf(ref));
    if (held) {
      held.users++;
      return held.value;
    }
    const value = await this.ports.load(ref);
    this.loaded.set(keyOf(ref), { value, users: 1 });
    return value;
  }

  /** Releases one domain's use of `ref`; the last user disposes it (the base is kept). */
  private release(ref: AdapterRef): void {
    if (isBase(ref)) return;
    const held = this.loaded.get(keyOf(ref));
    if (!held) return;
    if (--held.users > 0) return;
    this.loaded.delete(keyOf(ref));
    held.value.dispose();
  }

  private replace(domain: string, ref: AdapterRef, value: T): void {
    const old = this.slots.get(domain);
    if (isBase(ref)) this.slots.delete(domain);
    else this.slots.set(domain, { ref, value });
    if (old) this.release(old.ref);
  }

  private async tryAcquire(
    domain: string,
    ref: AdapterRef,
    previous: AdapterRef | null,
  ): Promise<{ ok: true; value: T } | { ok: false; domain: string; adapterId: string; error: string }> {
    try {
      return { ok: true, value: await this.acquire(ref) };
    } catch (err) {
      const error = (err as Error).message;
      await this.record('load_failed', domain, ref.adapterId, previous?.adapterId ?? '', error);
      return { ok: false, domain, adapterId: ref.adapterId, error };
    }
  }

  private async record(
    event: ServingEvent['event'],
    domain: string,
    adapterId: string,
    previous: string,
    detail: string,
  ) {
    try {
      await this.ports.record({
        event,
        domain,
        adapter_id: adapterId,
        previous_adapter_id: previous,
        detail: detail.slice(0, 2000),
        ts_ms: this.ports.now?.() ?? Date.now(),
      });
    } catch (err) {
      this.ports.onError?.(
        `recording ${event} of ${adapterId} for ${domain} failed: ${(err as Error).message}`,
      );
    }
  }

  private enqueue<R>(op: () => Promise<R>): Promise<R> {
    const run = this.queue.then(op, op);
    this.queue = run.catch(() => undefined);
    return run;
  }
}
