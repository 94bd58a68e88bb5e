import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { Kafka, Producer } from 'kafkajs';
import { resolve } from 'node:path';
import { Registry } from 'prom-client';
import { LocalArtefactStore } from '@cprec/artefacts';
import { ClickHouse, clickHouseProblem, ControlPlaneRepository } from '@cprec/clickhouse';
import {
  AdapterEventSchema,
  commandAgeProblem,
  decodeJson,
  DEFAULT_LIMITS,
  EvaluatorCommandSchema,
  parseWith,
  rejectionKindOf,
  type Topics,
} from '@cprec/contracts';
import {
  createServiceKafka,
  createReliableProducer,
  defaultTopicSpecs,
  ensureTopics,
  RejectedMessage,
  ResilientConsumer,
  type InboundMessage,
} from '@cprec/messaging';
import {
  baseModelSource,
  classifyFailure,
  consumerLog,
  ConsumerMetrics,
  createDeadLetterPublisher,
  HealthCheck,
  METRICS_REGISTRY,
  retryPolicyOf,
  topicsOf,
} from '@cprec/service-common';
import { EVALUATOR_CONFIG, EvaluatorConfig } from './config';
import { DriftMonitor } from './drift/drift-monitor';
import { DriftWatch } from './drift/drift-watch';
import { AdapterEvaluator, type Outcome } from './evaluation/adapter-evaluator';
import type { EvaluationJob, EvaluationJobResult } from './evaluation/protocol';
import { EvaluatorMetrics } from './evaluator.metrics';
import { ArtefactGateway } from './infra/artefact-gateway';
import { ClickHouseGateway } from './infra/clickhouse-gateway';
import { EvaluationAbortedError, type EvaluationRunner, type EventsPort, type JobSettings } from './ports';
import { EvaluationProcessRunner } from './runner/evaluation-process';
import { storeServingEvent } from './serving-events/serving-events-writer';

export const CLICKHOUSE = Symbol('CLICKHOUSE');

/**
 * The evaluator actor's Kafka side: AdapterPublished events (on the adapters topic) and manual
 * promotions (its mailbox) in; decisions, drift events, split requests and refresh commands out.
 * Messages are handled by a ResilientConsumer: committed one by one after they are handled (or
 * dead-lettered when they cannot be: invalid, unstorable, refused), with heartbeats sent while an
 * evaluation process runs (minutes), so the group never evicts us.
 * Adapter evaluations and drift ticks share one queue: one evaluation process at a time.
 *
 * It is also the one writer of `serving_events`: serving (read-only on ClickHouse) publishes what
 * it switched, rolled back or refused on `cprec.serving-events.v1`, and a second consumer — a group
 * of its own (`<EVALUATOR_GROUP_ID>-serving-events`), so an evaluation of minutes never holds the
 * record back — stores each event (idempotently) and dead-letters what cannot be stored.
 */
@Injectable()
export class EvaluatorService implements OnApplicationBootstrap, OnApplicationShutdown, HealthCheck {
  readonly name = 'evaluator';
  private readonly logger = new Logger('Evaluator');
  private readonly kafka: Kafka;
  private readonly metrics: EvaluatorMetrics;
  private readonly processes: EvaluationProcessRunner;
  private consumer: ResilientConsumer | null = null;
  private servingEvents: ResilientConsumer | null = null;
  private readonly control: ControlPlaneRepository;
  private producer: Producer | null = null;
  private driftTimer: NodeJS.Timeout | null = null;
  private driftBusy = false;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly topics: Topics;
  private readonly consumerMetrics: ConsumerMetrics;
  readonly adapters: AdapterEvaluator;
  readonly drift: DriftWatch | null;

  constructor(
    @Inject(EVALUATOR_CONFIG) private readonly config: EvaluatorConfig,
    @Inject(CLICKHOUSE) private readonly ch: ClickHouse,
    @Inject(METRICS_REGISTRY) registry: Registry,
  ) {
    const c = config;
    this.topics = topicsOf(c);
    this.consumerMetrics = new ConsumerMetrics(registry);
    this.kafka = createServiceKafka('evaluator', 'cprec-evaluator', c.CPREC_KAFKA_BROKERS);
    this.metrics = new EvaluatorMetrics(registry);
    this.processes = new EvaluationProcessRunner({
      timeoutMs: c.EVALUATOR_JOB_TIMEOUT_MS,
      logFile: (jobId) =>
        resolve(c.CPREC_HOME, 'logs', 'evaluator-jobs', `${jobId.replace(/[^A-Za-z0-9._-]/g, '_')}.log`),
      onProgress: (jobId, done, total) => this.logger.debug(`${jobId}: ${done}/${total}`),
    });
    const timed = (purpose: string): EvaluationRunner => ({
      run: async (job: EvaluationJob): Promise<EvaluationJobResult> => {
        const end = this.metrics.evaluationSeconds.startTimer({ purpose });
        try {
          return await this.processes.run(job);
        } finally {
          end();
        }
      },
    });
    const control = new ControlPlaneRepository(ch);
    this.control = control;
    const gateway = new ClickHouseGateway(ch, {
      request: async (command) => {
        await this.send(this.topics.sequencerCommands, command.split_id, command);
      },
      timeoutMs: c.EVALUATOR_SPLIT_TIMEOUT_MS,
      pollMs: c.EVALUATOR_SPLIT_POLL_MS,
    });
    const artefacts = new ArtefactGateway(new LocalArtefactStore(resolve(c.CPREC_HOME, 'artefacts')), {
      kind: c.EVALUATOR_MODEL === 'tiny-random' ? 'tiny-random' : 'checkpoint',
      source: baseModelSource(c, { model: c.EVALUATOR_BASE_MODEL, tokenizer: c.EVALUATOR_TOKENIZER }),
    });
    const events: EventsPort = {
      adapterEvent: (e) => this.send(this.topics.adapters, e.adapter_id, e),
      driftEvent: (e) => this.send(this.topics.drift, e.domain, e),
      roundCommand: (e) => this.send(this.topics.roundCommands, e.command_id, e),
    };
    const clock = { now: () => Date.now() };
    const job: JobSettings = {
      backend: c.EVALUATOR_BACKEND,
      budget: { maxTokens: c.EVALUATOR_MAX_TOKENS, maxTitleTokens: c.EVALUATOR_MAX_TITLE_TOKENS },
    };
    this.adapters = new AdapterEvaluator(control, gateway, artefacts, timed('gate'), events, clock, {
      defaultTargetDomains: c.EVALUATOR_TARGET_DOMAINS,
      splitSeed: c.EVALUATOR_SPLIT_SEED,
      splitEpoch: c.EVALUATOR_SPLIT_EPOCH,
      maxExamples: c.EVALUATOR_MAX_EXAMPLES,
      gate: {
        maxHr1Drop: c.EVALUATOR_GATE_MAX_HR1_DROP,
        minValidRatio: c.EVALUATOR_GATE_MIN_VALID_RATIO,
        minSamples: c.EVALUATOR_GATE_MIN_SAMPLES,
      },
      gateMethod: c.EVALUATOR_GATE_METHOD,
      generation: c.EVALUATOR_GENERATION,
      promoteCpt: c.EVALUATOR_PROMOTE_CPT,
      job,
    });
    this.drift =
      c.EVALUATOR_DRIFT_INTERVAL_MS > 0
        ? new DriftWatch(
            control,
            gateway,
            gateway,
            artefacts,
            timed('drift'),
            events,
            clock,
            new DriftMonitor({
              relativeDrop: c.EVALUATOR_DRIFT_RELATIVE_DROP,
              minSamples: c.EVALUATOR_DRIFT_MIN_SAMPLES,
              refreshOnAlert: c.EVALUATOR_DRIFT_REFRESH,
              cooldownMs: c.EVALUATOR_DRIFT_COOLDOWN_MS,
            }),
            {
              windowMs: c.EVALUATOR_DRIFT_WINDOW_MS,
              splitSeed: c.EVALUATOR_SPLIT_SEED,
              defaultDomains: c.EVALUATOR_TARGET_DOMAINS,
              maxExamples: c.EVALUATOR_MAX_EXAMPLES,
              method: c.EVALUATOR_GATE_METHOD,
              job,
            },
          )
        : null;
  }

  async check(): Promise<string | null> {
    if (!this.consumer) return 'consumer not started';
    const problem = this.consumer.problem();
    if (problem) return problem;
    if (!this.servingEvents) return 'serving-events consumer not started';
    const recording = this.servingEvents.problem();
    return recording ? `serving events: ${recording}` : null;
  }

  private async send(topic: string, key: string, value: object): Promise<void> {
    if (!this.producer) throw new Error('producer not connected');
    await this.producer.send({ topic, acks: -1, messages: [{ key, value: JSON.stringify(value) }] });
  }

  /** One evaluation at a time (gate and drift share the CPU and the queue). */
  private serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => undefined);
    return next;
  }

  async onApplicationBootstrap(): Promise<void> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      await ensureTopics(admin, defaultTopicSpecs(4, this.topics));
    } finally {
      await admin.disconnect();
    }
    this.producer = createReliableProducer(this.kafka);
    await this.producer.connect();
    const c = this.config;
    this.consumer = new ResilientConsumer({
      consumer: 'evaluator',
      kafka: this.kafka,
      groupId: c.EVALUATOR_GROUP_ID,
      topics: [this.topics.adapters, this.topics.evaluatorCommands],
      fromBeginning: c.EVALUATOR_FROM_BEGINNING,
      handle: (message) => this.handle(message),
      classify: classifyFailure,
      dependencies: () => clickHouseProblem(() => this.ch.ping()),
      deadLetters: await createDeadLetterPublisher(this.kafka, this.producer, this.topics),
      policy: retryPolicyOf(c),
      // Shutdown stopped the evaluation: no decision, the event is redelivered after the restart.
      isAbort: (err) => err instanceof EvaluationAbortedError,
      stalledAfterMs: c.CPREC_CONSUMER_STALLED_MS,
      log: consumerLog(this.logger),
      observer: {
        ...this.consumerMetrics.observer('evaluator'),
        retried: (topic) => this.metrics.failures.inc({ stage: topic }),
      },
    });
    await this.consumer.start();
    this.servingEvents = new ResilientConsumer({
      consumer: 'evaluator',
      kafka: this.kafka,
      groupId: `${c.EVALUATOR_GROUP_ID}-serving-events`,
      topics: [this.topics.servingEvents],
      // Every retained event: storing one again is harmless (idempotent), missing one is not.
      fromBeginning: true,
      handle: async (message) => void (await storeServingEvent(message, this.control)),
      classify: classifyFailure,
      dependencies: () => clickHouseProblem(() => this.ch.ping()),
      deadLetters: await createDeadLetterPublisher(this.kafka, this.producer, this.topics),
      policy: retryPolicyOf(c),
      stalledAfterMs: c.CPREC_CONSUMER_STALLED_MS,
      log: consumerLog(this.logger),
      observer: this.consumerMetrics.observer('evaluator'),
    });
    await this.servingEvents.start();
    if (this.drift) {
      this.driftTimer = setInterval(() => void this.driftTick(), this.config.EVALUATOR_DRIFT_INTERVAL_MS);
      void this.driftTick();
    }
    this.logger.log(`drift ${this.drift ? `every ${this.config.EVALUATOR_DRIFT_INTERVAL_MS} ms` : 'off'}`);
  }

  /**
   * One message of the evaluator's topics. Throws RejectedMessage for what can never be handled
   * (dead-lettered by the consumer); other failures are retried by the consumer's rule.
   */
  private async handle(message: InboundMessage): Promise<void> {
    const decoded = decodeJson(message.value, DEFAULT_LIMITS);
    if (!decoded.ok) throw new RejectedMessage(rejectionKindOf(decoded), decoded.reason);
    let outcome: Outcome;
    if (message.topic === this.topics.evaluatorCommands) {
      const command = parseWith(EvaluatorCommandSchema, decoded.value);
      if (!command.ok) throw new RejectedMessage('invalid', `evaluator command refused: ${command.reason}`);
      const stale = commandAgeProblem(command.value.ts, Date.now(), this.config.EVALUATOR_COMMAND_MAX_AGE_MS);
      if (stale !== null) {
        this.consumerMetrics.skip('evaluator', 'stale_command');
        return this.logger.warn(`command ${command.value.command_id} ${stale}`);
      }
      outcome = await this.serial(() => this.adapters.handleCommand(command.value));
      this.report(command.value.adapter_id, outcome);
      return;
    }
    const event = parseWith(AdapterEventSchema, decoded.value);
    if (!event.ok) throw new RejectedMessage('invalid', `adapter event refused: ${event.reason}`);
    // Our own promoted/rejected events share the topic.
    if (event.value.kind !== 'published') return;
    const published = event.value;
    this.logger.log(`evaluating ${published.adapter_kind} adapter ${published.adapter_id}`);
    outcome = await this.serial(() => this.adapters.handlePublished(published));
    this.report(published.adapter_id, outcome);
  }

  private report(adapterId: string, outcome: Outcome): void {
    this.metrics.decisions.inc({ decision: outcome.kind });
    if (outcome.kind === 'skipped') return this.logger.log(`${adapterId}: skipped (${outcome.reason})`);
    this.logger.log(`${adapterId}: ${outcome.kind} — ${outcome.reasons.join(' | ')}`);
    // A new adapter serving: the drift baseline is its HR@1 on the current window, measured now.
    if (outcome.kind === 'promoted' && this.drift) void this.driftTick();
  }

  private async driftTick(): Promise<void> {
    const drift = this.drift;
    // A tick longer than the interval is not stacked behind itself.
    if (!drift || this.driftBusy) return;
    this.driftBusy = true;
    try {
      const tick = await this.serial(() => drift.tick());
      if (tick.kind === 'idle') return this.logger.debug(`drift: ${tick.reason}`);
      for (const o of tick.observations) this.metrics.driftHr1.set({ domain: o.domain }, o.hr1);
      for (const a of tick.alerts) this.metrics.driftAlerts.inc({ domain: a.domain });
      this.logger.log(
        `drift: ${tick.adapterId} on [${tick.windowStartMs}, ${tick.windowEndMs}): ${tick.observations
          .map((o) => `${o.domain} HR@1 ${o.hr1.toFixed(3)} (${o.samples})`)
          .join(
            ', ',
          )}${tick.alerts.length > 0 ? `; ALERT ${tick.alerts.map((a) => a.domain).join(', ')}` : ''}`,
      );
    } catch (err) {
      this.metrics.failures.inc({ stage: 'drift' });
      this.logger.error(`drift tick failed: ${(err as Error).message}`);
    } finally {
      this.driftBusy = false;
    }
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.driftTimer) clearInterval(this.driftTimer);
    this.processes.stopAll();
    await Promise.all([this.consumer?.stop(), this.servingEvents?.stop()]);
    await this.queue.catch(() => undefined);
    await this.producer?.disconnect().catch(() => undefined);
  }
}
