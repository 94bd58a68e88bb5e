/** What identifies an adapter that can serve: the promoted artefact (or the base model). */
export interface AdapterRef {
  readonly adapterId: string;
  /** Artefact URI; '' for the base model. */
  readonly uri: string;
  /** sha256 the artefact must have; '' for the base model. */
  readonly sha256: string;
}

export const BASE_REF: AdapterRef = { adapterId: 'base', uri: '', sha256: '' };

/** Something that serves and must be released when replaced. */
export interface Disposable {
  dispose(): void;
}

export interface ServingEvent {
  event: 'switch' | 'rollback' | 'load_failed';
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
  /** Records a switch / rollback / refused load (serving_events). A failure here is logged, not fatal. */
  record(event: ServingEvent): Promise<void>;
  /** Looks up an adapter by id for a named rollback to one not in the history (e.g. the adapters table). */
  resolve?(adapterId: string): Promise<AdapterRef | null>;
  now?(): number;
  onError?(message: string): void;
}

export type SwitchOutcome =
  | { ok: true; adapterId: string; previousAdapterId: string; changed: boolean }
  | { ok: false; adapterId: string; error: string };

export class RollbackRefusedError extends Error {}

/**
 * Which adapter serves, and how it changes: hot swap on promotion, rollback on request.
 *
 * - The serving adapter is one reference (`current()`); a swap loads and verifies the new one
 *   completely while the old keeps answering, then replaces the reference in one assignment, so a
 *   request sees either the old or the new adapter, never a half-loaded one. The old one is
 *   disposed after the switch: a batch already handed to it was posted to its scoring worker
 *   before the dispose message, and a worker handles messages in order (or, on the serving
 *   thread, scoring is synchronous, so no request is inside it then).
 * - A refused load leaves the current adapter serving and records `load_failed` with the reason.
 * - History: every adapter replaced by a promotion is pushed on a stack; `rollback()` returns to
 *   the top of the stack (re-loaded and re-verified from its artefact: nothing stale is kept in
 *   memory), `rollback(id)` to a named adapter — the stack is cut back to it when it is there,
 *   otherwise it is resolved through `ports.resolve`.
 * - Operations run one at a time in arrival order (a queue), so a promotion arriving during a
 *   rollback cannot interleave with it.
 */
export class AdapterManager<T extends Disposable> {
  private serving: { ref: AdapterRef; value: T } | null = null;
  private readonly history: AdapterRef[] = [];
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly ports: AdapterManagerPorts<T>) {}

  /** The serving adapter and its loaded value (null before `start`). */
  current(): { ref: AdapterRef; value: T } | null {
    return this.serving;
  }

  /** Adapters a plain rollback would return to, most recent first. */
  historyIds(): string[] {
    return this.history.map((r) => r.adapterId).reverse();
  }

  /** Loads the first adapter (e.g. the base model, or the one serving before a restart). */
  start(ref: AdapterRef): Promise<void> {
    return this.enqueue(async () => {
      const value = await this.ports.load(ref);
      this.serving?.value.dispose();
      this.serving = { ref, value };
    });
  }

  /** Hot swap to a promoted adapter. Resolves with the outcome (never rejects on a refused load). */
  promote(ref: AdapterRef): Promise<SwitchOutcome> {
    return this.enqueue(async () => {
      const previous = this.serving?.ref ?? null;
      if (previous && previous.adapterId === ref.adapterId && previous.sha256 === ref.sha256)
        return { ok: true, adapterId: ref.adapterId, previousAdapterId: previous.adapterId, changed: false };
      const loaded = await this.tryLoad(ref, previous);
      if (!loaded.ok) return loaded;
      if (previous) this.history.push(previous);
      this.replace(ref, loaded.value);
      await this.record('switch', ref.adapterId, previous?.adapterId ?? '', 'promoted');
      return {
        ok: true,
        adapterId: ref.adapterId,
        previousAdapterId: previous?.adapterId ?? '',
        changed: true,
      };
    });
  }

  /**
   * Back to the previous adapter, or to `toAdapterId`. Throws RollbackRefusedError when there is
   * nothing to roll back to or the adapter is unknown; a target that fails to load is recorded
   * (`load_failed`) and reported as not ok, the current adapter keeps serving.
   */
  rollback(toAdapterId?: string, reason = 'rollback requested'): Promise<SwitchOutcome> {
    return this.enqueue(async () => {
      const previous = this.serving?.ref ?? null;
      let target: AdapterRef;
      let keep: number;
      if (toAdapterId === undefined) {
        if (this.history.length === 0)
          throw new RollbackRefusedError('nothing to roll back to: no previous adapter has served');
        keep = this.history.length - 1;
        target = this.history[keep];
      } else {
        if (previous?.adapterId === toAdapterId)
          return { ok: true, adapterId: toAdapterId, previousAdapterId: toAdapterId, changed: false };
        const at = this.history.map((r) => r.adapterId).lastIndexOf(toAdapterId);
        if (at >= 0) {
          keep = at;
          target = this.history[at];
        } else {
          const resolved =
            toAdapterId === BASE_REF.adapterId
              ? BASE_REF
              : ((await this.ports.resolve?.(toAdapterId)) ?? null);
          if (!resolved)
            throw new RollbackRefusedError(`unknown adapter "${toAdapterId}": cannot roll back to it`);
          keep = this.history.length;
          target = resolved;
        }
      }
      const loaded = await this.tryLoad(target, previous);
      if (!loaded.ok) return loaded;
      this.history.length = keep;
      this.replace(target, loaded.value);
      await this.record('rollback', target.adapterId, previous?.adapterId ?? '', reason);
      return {
        ok: true,
        adapterId: target.adapterId,
        previousAdapterId: previous?.adapterId ?? '',
        changed: true,
      };
    });
  }

  /** Disposes the serving adapter after pending operations finish. */
  async close(): Promise<void> {
    await this.enqueue(async () => {
      this.serving?.value.dispose();
      this.serving = null;
    });
  }

  private replace(ref: AdapterRef, value: T): void {
    const old = this.serving;
    this.serving = { ref, value };
    old?.value.dispose();
  }

  private async tryLoad(
    ref: AdapterRef,
    previous: AdapterRef | null,
  ): Promise<{ ok: true; value: T } | { ok: false; adapterId: string; error: string }> {
    try {
      return { ok: true, value: await this.ports.load(ref) };
    } catch (err) {
      const error = (err as Error).message;
      await this.record('load_failed', ref.adapterId, previous?.adapterId ?? '', error);
      return { ok: false, adapterId: ref.adapterId, error };
    }
  }

  private async record(event: ServingEvent['event'], adapterId: string, previous: string, detail: string) {
    try {
      await this.ports.record({
        event,
        adapter_id: adapterId,
        previous_adapter_id: previous,
        detail: detail.slice(0, 2000),
        ts_ms: this.ports.now?.() ?? Date.now(),
      });
    } catch (err) {
      this.ports.onError?.(`recording ${event} of ${adapterId} failed: ${(err as Error).message}`);
    }
  }

  private enqueue<R>(op: () => Promise<R>): Promise<R> {
    const run = this.queue.then(op, op);
    this.queue = run.catch(() => undefined);
    return run;
  }
}
