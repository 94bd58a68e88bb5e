import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Kafka, Producer } from 'kafkajs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { Registry } from 'prom-client';
import { LocalArtefactStore } from '@cprec/artefacts';
import {
  ClickHouse,
  clickHouseProblem,
  ControlPlaneRepository,
  servingOf,
  type ServingEventRecord,
} from '@cprec/clickhouse';
import { mergeAssignments, resumePlan } from './resume-plan';
import { readServingEvents, ServingEventOutbox } from './serving-event-log';
import {
  AdapterEventSchema,
  commandAgeProblem,
  decodeJson,
  DEFAULT_LIMITS,
  parseWith,
  rejectionKindOf,
  ServingCommandSchema,
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
  classifyFailure,
  consumerLog,
  ConsumerMetrics,
  createDeadLetterPublisher,
  HealthCheck,
  METRICS_REGISTRY,
  retryPolicyOf,
  topicsOf,
} from '@cprec/service-common';
import type { RankRequest, RecommenderRuntime, ScoredCandidate } from '@cprec/training';
import {
  AdapterManager,
  BASE_REF,
  RollbackRefusedError,
  type AdapterRef,
  type SwitchOutcome,
} from './adapter-manager';
import { loadServingBase, selectServingBackend, servingBaseChecksum } from './base-model';
import { rankByDomain } from './domain-routing';
import { ServingCatalogue } from './catalogue';
import { SERVING_CONFIG, ServingConfig } from './config';
import { FirstStage, type FirstStageSource } from './first-stage';
import { MicroBatcher } from './micro-batcher';
import type { RecommendRequest } from './recommend-request';
import { ServingMetrics } from './serving.metrics';
import { InProcessScorer, ScoringPool, type Scorer } from './scoring/scoring-pool';
import { loadSmokeTested, servingRuntime } from './scoring/serving-runtime';

export const CLICKHOUSE = Symbol('CLICKHOUSE');

/** A request failure with the HTTP status it deserves (mapped by the controller). */
export class ServingError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface RecommendResponse {
  items: Array<{ item_id: string; title: string; score: number; rank: number }>;
  /** The adapter of the request's domain that ranked, `base` when the domain has none (the base model alone). */
  adapter_id: string;
  adapter_version: string;
  first_stage: 'given' | FirstStageSource;
  latency_ms: number;
}

interface Scored {
  ranked: ScoredCandidate[];
  adapterId: string;
  adapterVersion: string;
}

/** What serves one domain, for `GET /v1/adapter` and the operator. */
export interface DomainServing {
  domain: string;
  adapterId: string;
  adapterVersion: string;
  history: string[];
}

/**
 * The serving actor: `/v1/recommend` (first stage → LM re-ranking through a micro-batcher, with
 * the adapter of the request's domain), the adapters' life cycle per target domain (hot swap on
 * AdapterEvent 'promoted' for each of its target domains, rollback of one domain on
 * ServingCommand or HTTP). Read-only on ClickHouse: every switch / rollback / refused load is
 * published on `cprec.serving-events.v1` (in order, retried until Kafka has it), which the evaluator
 * stores in `serving_events`; at start the topic is read back for what is not stored yet.
 */
@Injectable()
export class ServingService implements OnApplicationBootstrap, OnApplicationShutdown, HealthCheck {
  readonly name = 'serving';
  private readonly logger = new Logger('Serving');
  private readonly kafka: Kafka;
  private readonly artefacts: LocalArtefactStore;
  private readonly controlPlane: ControlPlaneRepository;
  private readonly catalogue: ServingCatalogue;
  private readonly metrics: ServingMetrics;
  private readonly firstStage: FirstStage;
  /** Every adapter announced as promoted, so a named rollback can return to one not in the history. */
  private readonly known = new Map<string, AdapterRef>();
  /** The model on this thread (SERVING_WORKERS=0), or the scoring workers. */
  private runtime: RecommenderRuntime | null = null;
  private pool: ScoringPool | null = null;
  private baseChecksum = '';
  private manager: AdapterManager<Scorer> | null = null;
  private batcher: MicroBatcher<RankRequest, Scored> | null = null;
  private consumer: ResilientConsumer | null = null;
  private producer: Producer | null = null;
  private outbox: ServingEventOutbox | null = null;
  private problem: string | null = 'starting';
  private readonly topics: Topics;
  private readonly consumerMetrics: ConsumerMetrics;
  private readonly ch: ClickHouse;

  constructor(
    @Inject(SERVING_CONFIG) private readonly config: ServingConfig,
    @Inject(CLICKHOUSE) ch: ClickHouse,
    @Inject(METRICS_REGISTRY) registry: Registry,
  ) {
    this.ch = ch;
    this.topics = topicsOf(config);
    this.consumerMetrics = new ConsumerMetrics(registry);
    this.kafka = createServiceKafka('serving', 'cprec-serving', config.CPREC_KAFKA_BROKERS);
    this.artefacts = new LocalArtefactStore(resolve(config.CPREC_HOME, 'artefacts'));
    this.controlPlane = new ControlPlaneRepository(ch);
    this.catalogue = new ServingCatalogue(ch, config.SERVING_TITLE_CACHE_MS);
    this.metrics = new ServingMetrics(registry);
    this.firstStage = new FirstStage((domain) => this.catalogue.domainSequences(domain), {
      refreshMs: config.SERVING_FIRST_STAGE_REFRESH_MS,
      minSequencesForSasrec: config.SERVING_SASREC_MIN_SEQUENCES,
      fitBudgetMs: config.SERVING_SASREC_FIT_BUDGET_MS,
      sasrec: {
        hiddenDim: 32,
        maxLen: 20,
        numBlocks: 1,
        numHeads: 1,
        epochs: config.SERVING_SASREC_EPOCHS,
        batchSize: 64,
      },
      onError: (m) => this.logger.warn(m),
      onBuilt: (domain, what) => this.logger.log(`first stage for ${domain}: ${what}`),
    });
  }

  async check(): Promise<string | null> {
    if (this.problem) return this.problem;
    if (this.pool?.problem) return this.pool.problem;
    return this.consumer ? this.consumer.problem() : 'adapter consumer not started';
  }

  /**
   * What serves: the shared base model's version and, per domain that has an adapter (or a
   * rollback history), its adapter; null while starting.
   */
  get serving(): { baseVersion: string; domains: DomainServing[] } | null {
    const manager = this.manager;
    const base = manager?.baseModel();
    if (!manager || !base) return null;
    return {
      baseVersion: this.versionOf(base.ref),
      domains: manager.domains().map((domain) => this.servingOf(domain)!),
    };
  }

  /** What answers `domain` (the base model when it has no adapter); null while starting. */
  servingOf(domain: string): DomainServing | null {
    const current = this.manager?.current(domain);
    if (!current || !this.manager) return null;
    return {
      domain,
      adapterId: current.ref.adapterId,
      adapterVersion: this.versionOf(current.ref),
      history: this.manager.historyIds(domain),
    };
  }

  private versionOf(ref: AdapterRef): string {
    return (ref.sha256 || this.baseChecksum).slice(0, 12);
  }

  async onApplicationBootstrap(): Promise<void> {
    const c = this.config;
    await this.connectKafka();
    if (c.SERVING_WORKERS > 0) {
      // The workers load the model; this thread only needs the base's identity.
      this.baseChecksum = await servingBaseChecksum(c, this.artefacts);
      this.pool = await ScoringPool.start(c, c.SERVING_WORKERS);
      this.logger.log(`${c.SERVING_WORKERS} scoring worker(s) ready`);
    } else {
      const backend = await selectServingBackend(c);
      this.logger.log(`tfjs backend ${backend.backend}, scoring on the serving thread`);
      const base = await loadServingBase(c, this.artefacts);
      this.baseChecksum = base.baseChecksum;
      this.runtime = servingRuntime(base, c);
    }
    this.manager = new AdapterManager<Scorer>({
      load: (ref) => this.loadAdapter(ref),
      record: async (e) => {
        this.metrics.adapterLoads.inc({ outcome: e.event });
        if (e.event === 'load_failed') this.logger.error(`adapter ${e.adapter_id} refused: ${e.detail}`);
        else
          this.logger.log(`${e.event}: ${e.previous_adapter_id || '(none)'} → ${e.adapter_id} (${e.detail})`);
        await this.publishEvent(e);
      },
      resolve: (id) => this.resolveAdapter(id),
      onError: (m) => this.logger.error(m),
    });
    await this.startServing();
    this.batcher = new MicroBatcher<RankRequest, Scored>((requests) => this.scoreBatch(requests), {
      windowMs: c.SERVING_BATCH_WINDOW_MS,
      maxBatch: c.SERVING_MAX_BATCH,
      maxConcurrent: Math.max(1, this.pool?.size ?? 1),
      onBatch: (n) => this.metrics.batchSize.observe(n),
      ...(c.SERVING_QUEUE_DEADLINE_MS > 0
        ? {
            maxQueueMs: c.SERVING_QUEUE_DEADLINE_MS,
            shed: (ms: number) =>
              new ServingError(
                503,
                `overloaded: the request waited ${Math.round(ms)} ms for the model; retry later`,
              ),
          }
        : {}),
    });
    await this.startConsumer();
    this.problem = null;
  }

  /**
   * Publishes a serving event (the outbox keeps this replica's order and retries until Kafka has
   * it). Waits for the acknowledgement — so a rollback answered 200 is on the topic, and read back
   * by a restart — but at most SERVING_EVENT_PUBLISH_WAIT_MS: during a Kafka outage the switch
   * itself is not held up, the event follows when the broker is back.
   */
  private async publishEvent(e: ServingEventRecord): Promise<void> {
    const sent = this.outbox!.publish(e);
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<'waiting'>((resolve) => {
      timer = setTimeout(() => resolve('waiting'), this.config.SERVING_EVENT_PUBLISH_WAIT_MS);
    });
    const outcome = await Promise.race([sent, waited]);
    clearTimeout(timer);
    if (outcome === 'waiting')
      this.logger.warn(
        `${e.event} of ${e.adapter_id} for ${e.domain} not acknowledged by Kafka yet; still retrying`,
      );
    else if (!outcome) this.logger.error(`${e.event} of ${e.adapter_id} for ${e.domain} not published`);
  }

  /**
   * The base model (loaded once, shared by every domain), then per domain the adapter that served
   * it before a restart (serving_events, plus the events on serving's topic the evaluator has not
   * stored yet), or the domain's promotion when that is newer (resumePlan:
   * a replica starting after a promotion would not hear of it). A legacy row (domain '', from when
   * one adapter served every domain) is resumed for the domains its adapter was trained for. A
   * domain whose adapter cannot be resumed is answered by the base model.
   */
  private async startServing(): Promise<void> {
    const manager = this.manager!;
    await manager.start(BASE_REF);
    const stored = await this.controlPlane.servingByDomain().catch((err: unknown) => {
      this.logger.error(`could not read what served before: ${(err as Error).message}`);
      return [];
    });
    const assignments = mergeAssignments(stored, await this.readBack());
    // Promotions made before this replica started (it reads adapter events from the end).
    const promotions = await this.controlPlane.listPromotions({ limit: 1000 }).catch((err: unknown) => {
      this.logger.error(`could not read the promotions: ${(err as Error).message}`);
      return [];
    });
    const domains = new Set<string>();
    const legacy = servingOf(assignments, '');
    if (legacy && legacy.domain === '' && legacy.adapter_id !== BASE_REF.adapterId) {
      const adapter = await this.controlPlane.getAdapter(legacy.adapter_id).catch(() => null);
      for (const d of adapter?.target_domains ?? []) domains.add(d);
    }
    for (const step of resumePlan(assignments, promotions, domains)) {
      const candidates = [step.adapterId, ...(step.fallbackAdapterId ? [step.fallbackAdapterId] : [])];
      for (const adapterId of candidates) {
        const ref = await this.resolveAdapter(adapterId);
        if (!ref) {
          this.logger.error(`adapter ${adapterId} of ${step.domain} is unknown; not resumed`);
          continue;
        }
        try {
          await manager.resume(step.domain, ref);
          this.logger.log(
            `resumed adapter ${ref.adapterId} for ${step.domain} (${adapterId === step.adapterId ? step.source : 'served before'})`,
          );
          break;
        } catch (err) {
          this.logger.error(
            `could not resume adapter ${ref.adapterId} for ${step.domain}: ${(err as Error).message}`,
          );
        }
      }
    }
    this.afterSwitch();
  }

  /**
   * The switches and rollbacks on serving's topic: the evaluator stores them asynchronously, so an
   * event published just before a restart (or while the evaluator is down) may not be in
   * serving_events yet. Without them a restart in that window would undo a rollback.
   */
  private async readBack(): Promise<ServingEventRecord[]> {
    const timeoutMs = this.config.SERVING_EVENTS_READBACK_MS;
    if (timeoutMs === 0) return [];
    try {
      const read = await readServingEvents(
        this.kafka,
        this.topics.servingEvents,
        `${this.groupId}-readback`,
        {
          timeoutMs,
        },
      );
      this.logger.log(
        `read back ${read.events.length} switch(es) and rollback(s) from ${this.topics.servingEvents}` +
          (read.skipped > 0 ? ` (${read.skipped} message(s) that are not serving events skipped)` : ''),
      );
      return read.events;
    } catch (err) {
      this.logger.error(
        `could not read back ${this.topics.servingEvents}: ${(err as Error).message}; resuming from serving_events alone`,
      );
      return [];
    }
  }

  private async resolveAdapter(adapterId: string): Promise<AdapterRef | null> {
    const seen = this.known.get(adapterId);
    if (seen) return seen;
    const stored = await this.controlPlane.getAdapter(adapterId);
    return stored ? { adapterId, uri: stored.uri, sha256: stored.sha256 } : null;
  }

  /**
   * Verified load: the artefact must be one of our store's, re-hashed (every file) and carry the
   * sha256 the promotion announced; then the model is built and a smoke inference must succeed.
   */
  private async loadAdapter(ref: AdapterRef): Promise<Scorer> {
    if (ref.adapterId === BASE_REF.adapterId && ref.uri === '') return this.loadVerified(ref.adapterId, null);
    const key = this.artefacts.keyOfUri(ref.uri);
    if (!key) throw new Error(`${ref.uri} is not an artefact of the store at ${this.artefacts.root}`);
    const dir = await this.artefacts.localPath(key); // re-hashes; throws ArtefactIntegrityError
    const record = await this.artefacts.stat(key);
    if (!record || record.sha256 !== ref.sha256)
      throw new Error(
        `artefact ${key} has sha256 ${record?.sha256 ?? '(none)'}, the promotion announced ${ref.sha256}`,
      );
    return this.loadVerified(ref.adapterId, dir);
  }

  /** Builds the model from a verified directory (null = base) where it will score, smoke-tested. */
  private async loadVerified(adapterId: string, dir: string | null): Promise<Scorer> {
    if (this.pool) return this.pool.load(adapterId, dir);
    return new InProcessScorer(loadSmokeTested(this.runtime!, adapterId, dir));
  }

  /** This replica's name (SERVING_INSTANCE_ID, default host-port): its events' key. */
  get instanceId(): string {
    return (
      this.config.SERVING_INSTANCE_ID ??
      `${hostname()
        .replace(/[^A-Za-z0-9._-]/g, '_')
        .slice(0, 100)}-${this.config.SERVING_PORT}`
    );
  }

  /** This replica's consumer group: one per replica, so every replica hot-swaps (see SERVING_INSTANCE_ID). */
  get groupId(): string {
    return `${this.config.SERVING_GROUP_ID}-${this.instanceId}`;
  }

  /** Finds the topics and connects the producer (serving events, dead letters) before anything is served. */
  private async connectKafka(): Promise<void> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      await ensureTopics(admin, defaultTopicSpecs(4, this.topics));
    } finally {
      await admin.disconnect();
    }
    const producer = createReliableProducer(this.kafka);
    await producer.connect();
    this.producer = producer;
    const topic = this.topics.servingEvents;
    this.outbox = new ServingEventOutbox(this.instanceId, {
      send: async (key, value) => void (await producer.send({ topic, acks: -1, messages: [{ key, value }] })),
      onError: (m) => this.logger.warn(m),
    });
  }

  private async startConsumer(): Promise<void> {
    const producer = this.producer!;
    const c = this.config;
    this.consumer = new ResilientConsumer({
      consumer: 'serving',
      kafka: this.kafka,
      groupId: this.groupId,
      topics: [this.topics.adapters, this.topics.servingCommands],
      // Not from the beginning: what serves after a restart comes from serving_events (and serving's
      // events topic), and replaying old promotions would undo later rollbacks.
      fromBeginning: false,
      handle: (message) => this.handle(message),
      classify: classifyFailure,
      dependencies: () => clickHouseProblem(() => this.ch.ping()),
      deadLetters: await createDeadLetterPublisher(this.kafka, producer, this.topics),
      policy: retryPolicyOf(c),
      stalledAfterMs: c.CPREC_CONSUMER_STALLED_MS,
      log: consumerLog(this.logger),
      observer: this.consumerMetrics.observer('serving'),
    });
    await this.consumer.start();
  }

  /** One adapter event or serving command; refusals are dead-lettered by the consumer. */
  private async handle(message: InboundMessage): Promise<void> {
    const decoded = decodeJson(message.value, DEFAULT_LIMITS);
    if (!decoded.ok) throw new RejectedMessage(rejectionKindOf(decoded), decoded.reason);
    if (message.topic === this.topics.adapters) {
      const event = parseWith(AdapterEventSchema, decoded.value);
      if (!event.ok) throw new RejectedMessage('invalid', `adapter event refused: ${event.reason}`);
      if (event.value.kind !== 'promoted') return;
      const ref = { adapterId: event.value.adapter_id, uri: event.value.uri, sha256: event.value.sha256 };
      this.known.set(ref.adapterId, ref);
      // The adapter serves the domains it was promoted for, and only those.
      const domains = [...new Set(event.value.target_domains)];
      if (domains.length === 0)
        return this.logger.warn(
          `adapter ${ref.adapterId} was promoted for no domain; nothing to serve it for`,
        );
      for (const domain of domains) await this.switchTo(domain, ref);
      return;
    }
    const command = parseWith(ServingCommandSchema, decoded.value);
    if (!command.ok) throw new RejectedMessage('invalid', `serving command refused: ${command.reason}`);
    const stale = commandAgeProblem(command.value.ts, Date.now(), this.config.SERVING_COMMAND_MAX_AGE_MS);
    if (stale !== null) {
      this.consumerMetrics.skip('serving', 'stale_command');
      return this.logger.warn(`serving command ${command.value.command_id} ${stale}`);
    }
    try {
      await this.rollback(
        command.value.domain,
        command.value.to_adapter_id,
        `${command.value.requested_by} (${command.value.command_id})`,
      );
    } catch (err) {
      if (!(err instanceof RollbackRefusedError)) throw err;
      this.logger.warn(`rollback ${command.value.command_id} refused: ${err.message}`);
    }
  }

  async switchTo(domain: string, ref: AdapterRef): Promise<SwitchOutcome> {
    const outcome = await this.manager!.promote(domain, ref);
    this.afterSwitch();
    return outcome;
  }

  async rollback(domain: string, toAdapterId: string | undefined, reason: string): Promise<SwitchOutcome> {
    const outcome = await this.manager!.rollback(domain, toAdapterId, reason);
    this.afterSwitch();
    return outcome;
  }

  private afterSwitch(): void {
    const s = this.serving;
    if (!s) return;
    this.metrics.setServing([
      { domain: '*', adapterId: BASE_REF.adapterId, adapterVersion: s.baseVersion },
      ...s.domains,
    ]);
  }

  /** Scores a batch whose requests may belong to different domains, each with its domain's adapter. */
  private async scoreBatch(requests: readonly RankRequest[]): Promise<Scored[]> {
    const manager = this.manager;
    if (!manager?.baseModel()) throw new ServingError(503, 'no model is loaded yet');
    const routed = await rankByDomain(requests, (domain) => manager.current(domain)!);
    return routed.map((r) => ({
      ranked: r.ranked,
      adapterId: r.ref.adapterId,
      adapterVersion: this.versionOf(r.ref),
    }));
  }

  async recommend(req: RecommendRequest): Promise<RecommendResponse> {
    const started = performance.now();
    if (!this.batcher || this.problem === 'starting') throw new ServingError(503, 'serving is starting');
    const explicitHistory = req.history !== undefined;
    let history = req.history ?? null;
    if (!history) {
      history = await this.catalogue.userHistory(req.domain, req.user_id!);
      if (!history)
        throw new ServingError(
          404,
          `user "${req.user_id}" has no history in domain "${req.domain}"; pass an explicit history`,
        );
    }
    let candidateIds: string[];
    let firstStage: RecommendResponse['first_stage'];
    if (req.candidate_ids) {
      candidateIds = req.candidate_ids;
      firstStage = 'given';
    } else {
      const proposed = await this.firstStage.propose(req.domain, history, req.n_candidates);
      if (!proposed || proposed.itemIds.length === 0)
        throw new ServingError(
          404,
          `domain "${req.domain}" has no interactions to propose candidates from; pass candidate_ids`,
        );
      candidateIds = proposed.itemIds;
      firstStage = proposed.source;
    }
    this.metrics.firstStage.inc({ source: firstStage });
    const titles = await this.catalogue.titlesOf(req.domain, [...history, ...candidateIds]);
    const unknownCandidates = candidateIds.filter((id) => !titles.has(id));
    if (unknownCandidates.length > 0)
      throw new ServingError(
        400,
        `candidate_ids: unknown items in domain "${req.domain}": ${unknownCandidates.slice(0, 10).join(', ')}`,
      );
    if (explicitHistory) {
      const unknown = history.filter((id) => !titles.has(id));
      if (unknown.length > 0)
        throw new ServingError(
          400,
          `history: unknown items in domain "${req.domain}": ${unknown.slice(0, 10).join(', ')}`,
        );
    }
    const scored = await this.batcher.submit({
      domain: req.domain,
      // Items no longer in the catalogue drop out of a stored history.
      history: history.filter((id) => titles.has(id)).map((id) => ({ itemId: id, title: titles.get(id)! })),
      candidates: candidateIds.map((id) => ({ itemId: id, title: titles.get(id)! })),
    });
    return {
      items: scored.ranked.slice(0, req.k).map((c) => ({
        item_id: c.itemId,
        title: titles.get(c.itemId) ?? c.title,
        score: c.score,
        rank: c.rank,
      })),
      adapter_id: scored.adapterId,
      adapter_version: scored.adapterVersion,
      first_stage: firstStage,
      latency_ms: Math.round((performance.now() - started) * 100) / 100,
    };
  }

  observe(route: string, status: number, seconds: number): void {
    this.metrics.latency.observe({ route, status: String(status) }, seconds);
    if (status >= 400) this.metrics.errors.inc({ route, status: String(status) });
  }

  async onApplicationShutdown(): Promise<void> {
    this.problem = 'shutting down';
    await this.consumer?.stop();
    const unsent = (await this.outbox?.close(5_000)) ?? [];
    for (const e of unsent)
      this.logger.error(`${e.event} of ${e.adapter_id} for ${e.domain} not published before shutdown`);
    await this.producer?.disconnect().catch(() => undefined);
    this.firstStage.dispose();
    await this.manager?.close();
    await this.pool?.close();
  }
}
