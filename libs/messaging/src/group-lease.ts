import { AssignerProtocol, type Consumer, type PartitionAssigner } from 'kafkajs';

/**
 * One active member per consumer group, from Kafka's own group membership: every partition the
 * group consumes goes to a single member (the active one; the others are standbys with nothing
 * assigned), and when the active member dies the group's session timeout hands the partitions —
 * and with them the right to write — to a standby. The actors with one writer (the sequencer,
 * the trainer) hold the lease on their mailbox topic, so no lease table or topic is needed.
 *
 * kafkajs's default round-robin assignor would not give this: a trainer consumes two one-partition
 * topics (round commands, corpus statistics), and with two members each would get one of them.
 */
export const ONE_ACTIVE_ASSIGNER = 'CprecOneActive';

export interface LeaseCandidate {
  memberId: string;
  /** The member says it holds the lease now (its join metadata). */
  holding: boolean;
}

/**
 * Who gets every partition: the member holding them now, so that a standby joining (or any other
 * rebalance) leaves a running round where it is; otherwise the lowest member id. Two claimants
 * cannot happen while clocks advance (a holder's claim expires before the broker can hand the
 * partitions on), but if it did the lowest id among them wins, deterministically.
 */
export function chooseActive(candidates: readonly LeaseCandidate[]): string | null {
  const sorted = [...candidates].sort((a, b) =>
    a.memberId < b.memberId ? -1 : a.memberId > b.memberId ? 1 : 0,
  );
  return (sorted.find((c) => c.holding) ?? sorted[0])?.memberId ?? null;
}

/** Every partition of every topic to `active`, nothing to the others. */
export function assignAllTo(
  active: string | null,
  memberIds: readonly string[],
  partitions: Readonly<Record<string, readonly number[]>>,
): Map<string, Record<string, number[]>> {
  const all = Object.fromEntries(Object.entries(partitions).map(([t, ps]) => [t, [...ps]]));
  return new Map(memberIds.map((id) => [id, id === active ? all : {}]));
}

const HOLDING = Buffer.from('{"holding":true}');
const NOT_HOLDING = Buffer.from('{"holding":false}');

/** The `holding` flag of a member's join metadata; anything unreadable counts as not holding. */
export function decodeHolding(memberMetadata: Buffer): boolean {
  try {
    const { userData } = AssignerProtocol.MemberMetadata.decode(memberMetadata) ?? { userData: null };
    if (!userData || userData.length === 0) return false;
    return (JSON.parse(userData.toString('utf8')) as { holding?: unknown }).holding === true;
  } catch {
    return false;
  }
}

/** The assignor: each member tells in its join metadata whether it holds the lease. */
export function oneActiveAssigner(holding: () => boolean): PartitionAssigner {
  return ({ cluster }) => ({
    name: ONE_ACTIVE_ASSIGNER,
    version: 0,
    async assign({ members, topics }) {
      const active = chooseActive(
        members.map((m) => ({ memberId: m.memberId, holding: decodeHolding(m.memberMetadata) })),
      );
      const partitions = Object.fromEntries(
        topics.map((t) => [t, cluster.findTopicPartitionMetadata(t).map((p) => p.partitionId)]),
      );
      const plan = assignAllTo(
        active,
        members.map((m) => m.memberId),
        partitions,
      );
      return [...plan].map(([memberId, assignment]) => ({
        memberId,
        memberAssignment: AssignerProtocol.MemberAssignment.encode({
          version: 0,
          assignment,
          userData: Buffer.alloc(0),
        }),
      }));
    },
    protocol({ topics }) {
      return {
        name: ONE_ACTIVE_ASSIGNER,
        metadata: AssignerProtocol.MemberMetadata.encode({
          version: 0,
          topics,
          userData: holding() ? HOLDING : NOT_HOLDING,
        }),
      };
    },
  });
}

export type LeaseRole = 'active' | 'standby';

/**
 * The lease's validity for a group session timeout: `validityMs` when set (> 0), else half the
 * session; refused unless shorter than the session (a dead holder's lease must run out before the
 * group can hand the partitions on).
 */
export function leaseValidityFor(sessionMs: number, validityMs = 0): number {
  const validity = validityMs > 0 ? validityMs : Math.floor(sessionMs / 2);
  if (validity >= sessionMs)
    throw new RangeError(
      `lease validity (${validity} ms) must be shorter than the group session timeout (${sessionMs} ms)`,
    );
  return validity;
}

export interface LeaseStatus {
  role: LeaseRole;
  /** When the role last changed (ms). */
  since: number;
  /** Active: the lease is held until then unless the group confirms it again; else null. */
  validUntil: number | null;
}

export interface GroupLeaseOptions {
  /**
   * How long after the group coordinator last confirmed this member (a heartbeat or a join,
   * counted from when the request was *sent*) the lease counts as held. The broker hands the
   * partitions to another member only after the session timeout without a heartbeat, so this
   * must be shorter than the consumer's session timeout — by more than the longest pause
   * between a holder's check and the write it guards (a long GC pause, a training step).
   * Half the session timeout is the default the services use.
   */
  validityMs: number;
  now?: () => number;
  /** Called on every change of role (from the consumer's events and from `check`). */
  onChange?: (role: LeaseRole, status: LeaseStatus) => void;
}

/**
 * The lease as this process sees it. Held = the latest assignment gave this member partitions
 * and the coordinator confirmed the membership within `validityMs`. A paused process (SIGSTOP, a
 * frozen VM) finds its lease expired by its own clock when it runs again, before it can write:
 * the time check is what fences a zombie, not a message it may never get. Call `check` on a
 * timer so that an expiry is noticed even when no event arrives.
 */
export class GroupLease {
  private assigned = false;
  private confirmedAt = Number.NEGATIVE_INFINITY;
  private role: LeaseRole = 'standby';
  private since: number;
  /** Send times of the latest requests whose success confirms membership, by API name. */
  private readonly sentAt = new Map<string, number>();
  readonly assigner: PartitionAssigner;

  constructor(private readonly options: GroupLeaseOptions) {
    if (!(options.validityMs > 0)) throw new RangeError('validityMs must be positive');
    this.since = this.now();
    this.assigner = oneActiveAssigner(() => this.held());
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  /** Follows a consumer's group membership (call again for each new consumer instance). */
  attach(consumer: Consumer): void {
    const e = consumer.events;
    consumer.on(e.REQUEST, (event) => {
      const { apiName, sentAt } = event.payload;
      if (apiName === 'Heartbeat' || apiName === 'SyncGroup') this.sentAt.set(apiName, sentAt);
    });
    consumer.on(e.GROUP_JOIN, (event) =>
      this.joined(event.payload.memberAssignment, this.sentAt.get('SyncGroup')),
    );
    consumer.on(e.HEARTBEAT, () => this.confirmed(this.sentAt.get('Heartbeat')));
    consumer.on(e.STOP, () => this.released());
    consumer.on(e.DISCONNECT, () => this.released());
  }

  /** A new assignment: active if it has partitions. */
  joined(assignment: Readonly<Record<string, readonly number[]>>, sentAt?: number): void {
    this.assigned = Object.values(assignment).some((ps) => ps.length > 0);
    this.confirm(sentAt);
    this.check();
  }

  /** A successful heartbeat (sent at `sentAt`): the membership, and so the assignment, holds. */
  confirmed(sentAt?: number): void {
    this.confirm(sentAt);
    this.check();
  }

  /** Left the group on purpose: standby at once. */
  released(): void {
    this.assigned = false;
    this.check();
  }

  private confirm(sentAt: number | undefined): void {
    // Without a send time (an event seen without its request) the confirmation counts from now.
    this.confirmedAt = Math.max(this.confirmedAt, sentAt ?? this.now());
  }

  held(): boolean {
    return this.assigned && this.now() < this.confirmedAt + this.options.validityMs;
  }

  status(): LeaseStatus {
    const held = this.held();
    return {
      role: held ? 'active' : 'standby',
      since: this.since,
      validUntil: held ? this.confirmedAt + this.options.validityMs : null,
    };
  }

  /** Re-evaluates the role and reports a change; returns the role. */
  check(): LeaseRole {
    const role: LeaseRole = this.held() ? 'active' : 'standby';
    if (role !== this.role) {
      this.role = role;
      this.since = this.now();
      this.options.onChange?.(role, this.status());
    }
    return role;
  }
}
