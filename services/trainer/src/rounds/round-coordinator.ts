import { createHash } from 'node:crypto';
import type { ArtefactRecord, ArtefactStore } from '@cprec/artefacts';
import type { AdapterLineage, CorpusStats, RoundCommand, RoundState } from '@cprec/contracts';
import type { RoundStepRecord } from '@cprec/clickhouse';
import type { RunnerPhase, RunnerResult, RunnerStep } from '../runner/protocol';
import type { RoundExecutor, RoundOutcome, RunningRound } from '../runner/supervisor';
import type {
  PlannedRound,
  RoundPlannerPort,
  RoundStorePort,
  TrainerEventsPort,
  TrainerMetricsPort,
} from './ports';
import { RoundPolicy } from './round-policy';
import {
  canTransition,
  IllegalTransitionError,
  isRoundState,
  isTerminal,
  TRAINING_STATES,
} from './round-state';

export interface CoordinatorConfig {
  /** Domains fine-tuned when a trigger names none. */
  defaultTargetDomains: readonly string[];
  /** Round steps are written in batches this often. */
  stepFlushMs: number;
  /**
   * A failed state write (ClickHouse or Kafka unavailable) is retried with exponential backoff
   * from `baseDelayMs` up to `maxDelayMs` between attempts until it succeeds — an outage delays
   * the round's rows and events but loses none. Only two things end a write otherwise, both
   * explicitly and reported in status: storage refusing the row itself (`classify` says
   * `permanent`: retrying cannot cure it), and shutdown, after `attempts` attempts. Later writes
   * wait behind it, so rows and events keep their order. Default: 10 attempts at shutdown,
   * 250 ms → 10 s between attempts.
   */
  writeRetry?: { attempts: number; baseDelayMs: number; maxDelayMs: number };
  /** What a failed write means (default: retry whatever it is). */
  classify?: (err: unknown) => 'permanent' | 'unavailable' | 'transient';
  /**
   * Whether this trainer may write now (its lease: docs/scaling.md). Checked before every write
   * to the trainer's tables and topics; a write it refuses is dropped, not retried — the active
   * trainer redoes the work from the round's checkpoint. Default: always.
   */
  mayWrite?: () => boolean;
}

/** A write refused because this trainer is not (or no longer) the active one. */
export class NotActiveError extends Error {
  constructor() {
    super('not the active trainer (lease not held): write dropped');
    this.name = 'NotActiveError';
  }
}

const DEFAULT_WRITE_RETRY = { attempts: 10, baseDelayMs: 250, maxDelayMs: 10_000 };

/** Unpaired UTF-16 surrogates (no UTF-8 form: ClickHouse would refuse the row) as U+FFFD. */
const wellFormed = (text: string): string =>
  text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');

interface Round {
  id: string;
  state: RoundState;
  requestedBy: string;
  reason: string;
  targetDomains: string[];
  createdMs: number;
  version: number;
  step: number;
  totalSteps: number;
  loss: number | null;
  lr: number | null;
}

export interface Clock {
  now(): number;
}

/**
 * Round ids derive from the trigger's command id, so a re-delivered trigger is recognised. A
 * command id that is safe in paths and artefact keys (the operator's UUIDs) is the round id
 * itself, so whoever triggered can follow GET /v1/rounds/<command_id>; anything else is hashed.
 */
export function roundIdFor(commandId: string): string {
  if (/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(commandId)) return commandId;
  return `round-${createHash('sha256').update(commandId).digest('hex').slice(0, 16)}`;
}

export const trunkKey = (roundId: string): string => `trunks/${roundId}`;
export const adapterKey = (roundId: string, kind: 'cpt' | 'sft', domain?: string): string =>
  kind === 'cpt' ? `adapters/${roundId}/cpt` : `adapters/${roundId}/sft-${domain}`;
export const adapterIdOf = (roundId: string, kind: 'cpt' | 'sft', domain?: string): string =>
  kind === 'cpt' ? `${roundId}-cpt` : `${roundId}-sft-${domain}`;

/**
 * The trainer's brain, free of Kafka, NestJS and processes (those are ports): a queue of rounds
 * run one at a time, each round's state machine (round-state.ts) persisted in `rounds` and
 * published as RoundEvents, step series batched into `round_steps`, and on success the
 * artefacts (trunk, CPT adapter, SFT adapters) stored, recorded in `adapters` and announced as
 * AdapterEvents with their lineage. Every write goes through one promise chain so rows and
 * events keep the order of the transitions.
 */
export class RoundCoordinator {
  private readonly rounds = new Map<string, Round>();
  private readonly queue: string[] = [];
  private current: { round: Round; running: RunningRound | null; cancelRequested: boolean } | null = null;
  private pendingSteps: RoundStepRecord[] = [];
  private lastFlushMs = 0;
  private stepWindow = { steps: 0, tokens: 0, startedMs: 0, lastLoss: Number.NaN };
  private writes: Promise<void> = Promise.resolve();
  private idleWaiters: Array<() => void> = [];
  private lastError: string | null = null;

  constructor(
    private readonly store: RoundStorePort,
    private readonly events: TrainerEventsPort,
    private readonly planner: RoundPlannerPort,
    private readonly executor: RoundExecutor,
    private readonly artefacts: ArtefactStore,
    private readonly policy: RoundPolicy,
    private readonly metrics: TrainerMetricsPort,
    private readonly config: CoordinatorConfig,
    private readonly clock: Clock = { now: () => Date.now() },
  ) {}

  /** Current round id and state, queue length, last persistence error (for /health). */
  status(): { current: { id: string; state: RoundState } | null; queued: number; lastError: string | null } {
    return {
      current: this.current ? { id: this.current.round.id, state: this.current.round.state } : null,
      queued: this.queue.length,
      lastError: this.lastError,
    };
  }

  stateOf(roundId: string): RoundState | null {
    return this.rounds.get(roundId)?.state ?? null;
  }

  /**
   * After a restart: rounds left queued are queued again; a round left mid-training is resumed
   * first, from its checkpoint (its saved plan has the same data slice). The policy's clock and
   * watermark baseline start from the newest round.
   */
  async recover(): Promise<void> {
    const stored = await this.store.listRounds({ limit: 500 });
    const resumable: Round[] = [];
    for (const s of [...stored].sort((a, b) => a.created_ms - b.created_ms)) {
      if (!isRoundState(s.state)) continue;
      const round: Round = {
        id: s.round_id,
        state: s.state,
        requestedBy: s.requested_by,
        reason: s.message,
        targetDomains: [...s.target_domains],
        createdMs: s.created_ms,
        version: s.version,
        step: s.step,
        totalSteps: s.total_steps,
        loss: s.loss,
        lr: s.lr,
      };
      this.rounds.set(round.id, round);
      if (!isTerminal(round.state)) resumable.push(round);
    }
    const newest = [...stored].sort((a, b) => b.created_ms - a.created_ms)[0];
    if (newest) this.policy.roundStarted(newest.created_ms, 0);
    const training = resumable.filter((r) => TRAINING_STATES.includes(r.state));
    const queued = resumable.filter((r) => r.state === 'queued');
    this.queue.push(...training.map((r) => r.id), ...queued.map((r) => r.id));
    this.pump();
  }

  async handleCommand(command: RoundCommand): Promise<void> {
    if (command.kind === 'trigger') {
      await this.trigger(command.command_id, command.requested_by, command.reason, command.target_domains);
    } else {
      await this.cancel(command.round_id, command.requested_by);
    }
  }

  /** Queues a round; returns its id (the existing one for a re-delivered command). */
  async trigger(
    commandId: string,
    requestedBy: string,
    reason: string,
    targetDomains?: readonly string[],
  ): Promise<string> {
    const id = roundIdFor(commandId);
    if (this.rounds.has(id)) return id;
    const now = this.clock.now();
    const round: Round = {
      id,
      state: 'queued',
      requestedBy,
      reason,
      targetDomains: [...(targetDomains ?? this.config.defaultTargetDomains)],
      createdMs: now,
      version: 0,
      step: 0,
      totalSteps: 0,
      loss: null,
      lr: null,
    };
    this.rounds.set(id, round);
    await this.persistState(round, reason ? `queued: ${reason}` : 'queued');
    this.queue.push(id);
    this.pump();
    return id;
  }

  async cancel(roundId: string, requestedBy: string): Promise<boolean> {
    const round = this.rounds.get(roundId);
    if (!round || isTerminal(round.state)) return false;
    const at = this.queue.indexOf(roundId);
    if (at >= 0) {
      this.queue.splice(at, 1);
      this.transition(round, 'cancelled', `cancelled by ${requestedBy} while queued`);
      await this.writes;
      return true;
    }
    if (this.current?.round.id === roundId) {
      this.current.cancelRequested = true;
      this.current.running?.stop();
      return true;
    }
    return false;
  }

  observeCorpusStats(stats: CorpusStats): void {
    this.policy.observe(stats);
  }

  /** Whether the policy counts stream time (then feed it the newest event time). */
  get watchesStreamTime(): boolean {
    return this.policy.watchesStreamTime;
  }

  /** The stream's clock: the newest event time in the corpus. */
  observeStreamTime(newestEventMs: number): void {
    this.policy.observeStreamTime(newestEventMs);
  }

  /** Policy check (called periodically and after corpus statistics): starts a round when due. */
  async tick(): Promise<string | null> {
    this.flushStepsIfDue();
    if (this.current || this.queue.length > 0) return null;
    const now = this.clock.now();
    const reason = this.policy.due(now);
    if (!reason) return null;
    return this.trigger(`auto-${now}`, 'policy', reason);
  }

  /** Resolves when no round is running or queued (tests, shutdown). */
  idle(): Promise<void> {
    if (!this.current && this.queue.length === 0) return this.writes;
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops the running round without failing it: it stays in its state and resumes on restart. */
  async shutdown(): Promise<void> {
    this.queue.length = 0;
    const current = this.current;
    if (current?.running) {
      current.running.stop();
      await current.running.outcome.catch(() => undefined);
    }
    this.flushSteps();
    await this.writes;
  }

  private shuttingDown = false;

  /**
   * The lease was lost: the running round's runner is SIGKILLed (no stop, no checkpoint, no
   * state change) and nothing more is written — the new active trainer resumes the round from
   * its last checkpoint. This coordinator is not used again; an actor that becomes active later
   * builds a new one and recovers from ClickHouse.
   */
  abandon(): void {
    this.shuttingDown = true;
    this.queue.length = 0;
    this.current?.running?.abandon();
  }

  /** Marks shutdown so that the stop above is not recorded as a cancellation. */
  beginShutdown(): void {
    this.shuttingDown = true;
  }

  // --------------------------------------------------------------------------------------------

  private pump(): void {
    if (this.current || this.shuttingDown) return;
    const id = this.queue.shift();
    if (id === undefined) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      void this.writes.then(() => waiters.forEach((w) => w()));
      return;
    }
    const round = this.rounds.get(id)!;
    const current = { round, running: null as RunningRound | null, cancelRequested: false };
    this.current = current;
    void this.runRound(current).catch((err: Error) => {
      this.lastError = `round ${round.id}: ${err.message}`;
    });
  }

  private async runRound(current: {
    round: Round;
    running: RunningRound | null;
    cancelRequested: boolean;
  }): Promise<void> {
    const { round } = current;
    let outcome: RoundOutcome;
    let plan: PlannedRound | null = null;
    try {
      // Planning reads ClickHouse (watermarks, the previous trunk): an outage delays the round.
      plan = await this.whenReachable(
        round,
        'planning',
        async () =>
          (await this.planner.resume(round.id)) ?? (await this.planner.plan(round.id, round.targetDomains)),
        () => current.cancelRequested,
      );
      this.policy.roundStarted(round.createdMs, plan.job.watermark);
      if (current.cancelRequested) {
        outcome = { kind: 'stopped' };
      } else {
        this.stepWindow = { steps: 0, tokens: 0, startedMs: this.clock.now(), lastLoss: Number.NaN };
        const running = this.executor.start(plan.job, {
          onPhase: (phase, steps) => this.onPhase(round, phase, steps),
          onStep: (step) => this.onStep(round, step),
          onAttempt: (attempt, resumedFrom) => {
            if (attempt > 1 || resumedFrom)
              this.persistProgress(
                round,
                `runner attempt ${attempt}${resumedFrom ? `, resumed ${resumedFrom.phase} at data position ${resumedFrom.dataPosition}` : ''}`,
              );
          },
          onCrash: (attempt, reason) => {
            this.metrics.runnerCrash();
            this.persistProgress(round, `runner attempt ${attempt} crashed (${reason})`);
          },
          onWaiting: (attempt, reason) =>
            this.persistProgress(
              round,
              `runner attempt ${attempt} could not reach ClickHouse (${reason}); waiting for it, the round resumes from its checkpoint`,
            ),
        });
        current.running = running;
        if (current.cancelRequested) running.stop();
        outcome = await running.outcome;
      }
    } catch (err) {
      outcome = { kind: 'failed', reason: (err as Error).message };
    }
    this.flushSteps();
    try {
      if (outcome.kind === 'done' && plan) {
        await this.publishWhenReachable(round, plan, outcome.result);
      } else if (outcome.kind === 'stopped') {
        if (!this.shuttingDown || current.cancelRequested)
          this.transition(round, 'cancelled', 'cancelled by command');
      } else if (outcome.kind === 'failed') {
        this.transition(round, 'failed', outcome.reason.slice(0, 2000));
      }
    } catch (err) {
      this.transition(round, 'failed', `publishing failed: ${(err as Error).message}`);
    }
    await this.writes;
    this.current = null;
    this.pump();
  }

  /**
   * Publishes the round's adapters, waiting out a ClickHouse or Kafka outage instead of failing a
   * round whose training is done (publishing again is harmless: artefacts are content-addressed,
   * adapter rows are snapshots and adapter events idempotent).
   */
  private publishWhenReachable(round: Round, plan: PlannedRound, result: RunnerResult): Promise<void> {
    return this.whenReachable(round, 'publishing', () => this.publish(round, plan, result));
  }

  /**
   * Runs `work` again (with the write backoff) while it fails because a dependency is unreachable
   * (`classify` → unavailable), reporting the wait in the round's status; other errors, and any
   * error while the trainer shuts down or the round is being cancelled, are thrown as before.
   */
  private async whenReachable<T>(
    round: Round,
    what: string,
    work: () => Promise<T>,
    cancelled: () => boolean = () => false,
  ): Promise<T> {
    const retry = this.config.writeRetry ?? DEFAULT_WRITE_RETRY;
    for (let n = 1; ; n++) {
      try {
        return await work();
      } catch (err) {
        if (this.shuttingDown || cancelled() || this.config.classify?.(err) !== 'unavailable') throw err;
        this.persistProgress(
          round,
          `${what} waits for an unreachable dependency (attempt ${n}): ${(err as Error).message}`,
        );
        await new Promise((r) => setTimeout(r, Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (n - 1))));
      }
    }
  }

  private assertMayWrite(): void {
    if (this.config.mayWrite && !this.config.mayWrite()) throw new NotActiveError();
  }

  private async publish(round: Round, plan: PlannedRound, result: RunnerResult): Promise<void> {
    const { job } = plan;
    this.assertMayWrite();
    const trunk = await this.artefacts.put(trunkKey(round.id), result.trunkDir, {
      metadata: {
        round_id: round.id,
        watermark: job.watermark,
        global_step: result.trunkGlobalStep,
        parent_trunk_id: plan.previousTrunkId,
        base_model: plan.baseModel,
        base_model_sha256: job.model.sha256,
      },
    });
    const cpt = result.adapters.find((a) => a.kind === 'cpt');
    const cptId = cpt ? adapterIdOf(round.id, 'cpt') : null;
    const published: Array<{
      record: ArtefactRecord;
      adapterId: string;
      kind: 'cpt' | 'sft';
      domains: string[];
    }> = [];
    for (const a of result.adapters) {
      const domain = a.targetDomains[0];
      const record = await this.artefacts.put(adapterKey(round.id, a.kind, domain), a.dir, {
        metadata: { round_id: round.id, kind: a.kind, target_domains: a.targetDomains, trunk_id: trunk.key },
      });
      published.push({
        record,
        adapterId: adapterIdOf(round.id, a.kind, domain),
        kind: a.kind,
        domains: a.targetDomains,
      });
    }
    const now = this.clock.now();
    for (const p of published) {
      const lineage: AdapterLineage = {
        base_model: plan.baseModel,
        base_model_sha256: job.model.sha256,
        round_id: round.id,
        trunk_id: trunk.key,
        cpt_adapter_id: p.kind === 'sft' ? cptId : null,
        data_watermark: job.watermark,
      };
      this.assertMayWrite();
      await this.store.insertAdapter({
        adapter_id: p.adapterId,
        adapter_kind: p.kind,
        round_id: round.id,
        target_domains: p.domains,
        uri: p.record.uri,
        sha256: p.record.sha256,
        lineage: { ...lineage, previous_trunk_id: plan.previousTrunkId },
        created_ms: now,
      });
      this.assertMayWrite();
      await this.events.adapterEvent({
        kind: 'published',
        adapter_id: p.adapterId,
        adapter_kind: p.kind,
        target_domains: p.domains,
        uri: p.record.uri,
        sha256: p.record.sha256,
        lineage,
        ts: now,
      });
    }
    const note = result.fineTuningNote ? `; ${result.fineTuningNote}` : '';
    this.transition(round, 'published', `published ${published.map((p) => p.adapterId).join(', ')}${note}`);
  }

  private onPhase(round: Round, phase: RunnerPhase, steps: number): void {
    if (phase !== 'fine_tuning') round.totalSteps = Math.max(round.totalSteps, round.step + steps);
    this.flushSteps();
    this.transition(round, phase, `${phase}${steps > 0 ? `: ${steps} steps` : ''}`);
  }

  private onStep(round: Round, step: RunnerStep): void {
    round.step = step.roundStep;
    round.totalSteps = step.roundSteps;
    round.loss = step.loss;
    round.lr = step.lr;
    // The first step after warm-up reports 'stable' before any phase message does.
    if (step.phase !== round.state && canTransition(round.state, step.phase))
      this.transition(round, step.phase, step.phase);
    this.pendingSteps.push({
      round_id: round.id,
      phase: step.phase,
      step: step.step,
      loss: step.loss,
      lr: step.lr,
      tokens: step.tokens,
      ts_ms: this.clock.now(),
    });
    this.stepWindow.steps++;
    this.stepWindow.tokens += step.tokens;
    this.stepWindow.lastLoss = step.loss;
    this.flushStepsIfDue();
  }

  private flushStepsIfDue(): void {
    if (this.pendingSteps.length > 0 && this.clock.now() - this.lastFlushMs >= this.config.stepFlushMs)
      this.flushSteps();
  }

  /** Writes buffered steps and a progress row, and publishes a progress event. */
  private flushSteps(): void {
    if (this.pendingSteps.length === 0) return;
    const batch = this.pendingSteps;
    this.pendingSteps = [];
    const now = this.clock.now();
    this.lastFlushMs = now;
    const w = this.stepWindow;
    this.metrics.steps(w.steps, w.tokens, Math.max(0.001, (now - w.startedMs) / 1000), w.lastLoss);
    this.stepWindow = { steps: 0, tokens: 0, startedMs: now, lastLoss: w.lastLoss };
    this.enqueueWrite(() => this.store.insertRoundSteps(batch));
    const round = this.rounds.get(batch[0]!.round_id);
    if (round) this.persistProgress(round, `step ${round.step}/${round.totalSteps}`);
  }

  private transition(round: Round, to: RoundState, message: string): void {
    if (!canTransition(round.state, to)) {
      this.lastError = new IllegalTransitionError(round.id, round.state, to).message;
      return;
    }
    const changed = round.state !== to;
    round.state = to;
    if (changed) this.metrics.roundState(to);
    void this.persistState(round, message);
  }

  private persistProgress(round: Round, message: string): void {
    void this.persistState(round, message);
  }

  /** One `rounds` row (versions strictly increase per round) and one RoundEvent, in order. */
  private persistState(round: Round, rawMessage: string): Promise<void> {
    // Messages quote runner errors and command reasons: keep them storable.
    const message = wellFormed(rawMessage);
    const now = this.clock.now();
    round.version = Math.max(now, round.version + 1);
    const snapshot = { ...round };
    return this.enqueueWrite(async () => {
      await this.store.insertRoundState({
        round_id: snapshot.id,
        state: snapshot.state,
        step: snapshot.step,
        total_steps: snapshot.totalSteps,
        loss: snapshot.loss,
        lr: snapshot.lr,
        message,
        target_domains: snapshot.targetDomains,
        requested_by: snapshot.requestedBy,
        created_ms: snapshot.createdMs,
        updated_ms: now,
        version: snapshot.version,
      });
      await this.events.roundEvent({
        round_id: snapshot.id,
        state: snapshot.state,
        step: snapshot.step,
        total_steps: snapshot.totalSteps,
        loss: snapshot.loss === null || Number.isFinite(snapshot.loss) ? snapshot.loss : null,
        lr: snapshot.lr,
        message,
        ts: now,
      });
    });
  }

  /**
   * Serialises writes and retries a failing one until it succeeds (see
   * `CoordinatorConfig.writeRetry`). The rows are versioned snapshots and the events idempotent
   * state reports, so writing one again after a partial failure is harmless. A write storage
   * refuses for what it holds, or one still failing when the trainer shuts down, is given up
   * explicitly and stays reported in status; it does not block later ones.
   */
  private enqueueWrite(write: () => Promise<void>): Promise<void> {
    const retry = this.config.writeRetry ?? DEFAULT_WRITE_RETRY;
    const attempt = async (): Promise<void> => {
      for (let n = 1; ; n++) {
        if (this.config.mayWrite && !this.config.mayWrite()) {
          this.lastError = new NotActiveError().message;
          return;
        }
        try {
          await write();
          // A retry that got through clears its report; a write given up stays reported.
          if (this.lastError?.startsWith('write failed (attempt')) this.lastError = null;
          return;
        } catch (err) {
          const reason = (err as Error).message;
          if (this.config.classify?.(err) === 'permanent') {
            this.lastError = `write refused by storage, not retried: ${reason}`;
            return;
          }
          if (this.shuttingDown && n >= retry.attempts) {
            this.lastError = `write failed after ${n} attempts, given up at shutdown: ${reason}`;
            return;
          }
          this.lastError = `write failed (attempt ${n}), retrying until it succeeds: ${reason}`;
          const delay = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (n - 1));
          await new Promise((r) => setTimeout(r, delay));
        }
      }
    };
    const next = this.writes.then(attempt);
    this.writes = next;
    return next;
  }
}
