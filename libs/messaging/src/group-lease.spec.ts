import { AssignerProtocol, type Cluster } from 'kafkajs';
import {
  assignAllTo,
  chooseActive,
  decodeHolding,
  GroupLease,
  leaseValidityFor,
  type LeaseRole,
  ONE_ACTIVE_ASSIGNER,
} from './group-lease';

describe('chooseActive / assignAllTo', () => {
  it('keeps the partitions with the member that holds them, else gives them to the lowest member id', () => {
    expect(chooseActive([])).toBeNull();
    expect(
      chooseActive([
        { memberId: 'b', holding: false },
        { memberId: 'a', holding: false },
      ]),
    ).toBe('a');
    // A standby with a lower id joins: the holder keeps its round.
    expect(
      chooseActive([
        { memberId: 'a', holding: false },
        { memberId: 'c', holding: true },
      ]),
    ).toBe('c');
    expect(
      chooseActive([
        { memberId: 'd', holding: true },
        { memberId: 'c', holding: true },
      ]),
    ).toBe('c');
  });

  it('assigns every partition of every topic to one member and nothing to the others', () => {
    const plan = assignAllTo('m2', ['m1', 'm2', 'm3'], { commands: [0], stats: [0], wide: [0, 1, 2] });
    expect(plan.get('m2')).toEqual({ commands: [0], stats: [0], wide: [0, 1, 2] });
    expect(plan.get('m1')).toEqual({});
    expect(plan.get('m3')).toEqual({});
  });
});

describe('oneActiveAssigner (through GroupLease.assigner)', () => {
  const cluster = {
    findTopicPartitionMetadata: (topic: string) =>
      (topic === 'commands' ? [0] : [0, 1]).map((partitionId) => ({ partitionId })),
  } as unknown as Cluster;
  const logger = {} as never;

  it('advertises whether the member holds the lease and gives a holder everything on a rebalance', async () => {
    let now = 0;
    const holder = new GroupLease({ validityMs: 5_000, now: () => now });
    const newcomer = new GroupLease({ validityMs: 5_000, now: () => now });
    holder.joined({ commands: [0] }, 0);
    const a = holder.assigner({ cluster, groupId: 'g', logger });
    const b = newcomer.assigner({ cluster, groupId: 'g', logger });
    expect(a.name).toBe(ONE_ACTIVE_ASSIGNER);
    const members = [
      // The newcomer's id sorts first: without stickiness it would take the round over.
      { memberId: 'a-new', memberMetadata: b.protocol({ topics: ['commands', 'stats'] }).metadata },
      { memberId: 'z-old', memberMetadata: a.protocol({ topics: ['commands', 'stats'] }).metadata },
    ];
    expect(members.map((m) => decodeHolding(m.memberMetadata))).toEqual([false, true]);
    const assigned = await a.assign({ members, topics: ['commands', 'stats'] });
    const decoded = Object.fromEntries(
      assigned.map((x) => [
        x.memberId,
        AssignerProtocol.MemberAssignment.decode(x.memberAssignment)!.assignment,
      ]),
    );
    expect(decoded).toEqual({ 'z-old': { commands: [0], stats: [0, 1] }, 'a-new': {} });

    // Once the holder's lease has expired (it stopped confirming), it no longer claims it.
    now = 6_000;
    expect(decodeHolding(a.protocol({ topics: ['commands'] }).metadata)).toBe(false);
  });

  it('reads garbage or foreign metadata as not holding', () => {
    expect(decodeHolding(Buffer.from('nonsense'))).toBe(false);
    expect(
      decodeHolding(
        AssignerProtocol.MemberMetadata.encode({ version: 0, topics: ['t'], userData: Buffer.alloc(0) }),
      ),
    ).toBe(false);
  });
});

describe('GroupLease', () => {
  function lease(validityMs = 5_000) {
    const clock = { now: 1_000 };
    const changes: LeaseRole[] = [];
    const l = new GroupLease({ validityMs, now: () => clock.now, onChange: (role) => changes.push(role) });
    return { l, clock, changes };
  }

  it('is standby until an assignment with partitions arrives, active while confirmed', () => {
    const { l, clock, changes } = lease();
    expect(l.check()).toBe('standby');
    l.joined({ commands: [] }, clock.now);
    expect(l.held()).toBe(false);
    l.joined({ commands: [0] }, clock.now);
    expect(l.status()).toEqual({ role: 'active', since: 1_000, validUntil: 6_000 });
    // Heartbeats keep it: each counts from when it was sent.
    clock.now = 4_000;
    l.confirmed(3_900);
    clock.now = 8_000;
    expect(l.check()).toBe('active');
    expect(l.status().validUntil).toBe(8_900);
    expect(changes).toEqual(['active']);
  });

  it('a paused holder (SIGSTOP) finds the lease expired by its own clock before anything else happens', () => {
    const { l, clock, changes } = lease();
    l.joined({ commands: [0] }, clock.now);
    clock.now += 30_000; // stopped for 30 s: the broker has handed the partitions on meanwhile
    expect(l.held()).toBe(false);
    // A heartbeat sent before the pause but answered after it does not revive the lease.
    l.confirmed(1_500);
    expect(l.held()).toBe(false);
    expect(l.check()).toBe('standby');
    expect(changes).toEqual(['active', 'standby']);
  });

  it('counts a confirmation from the time its request was sent, not from the answer', () => {
    const { l, clock } = lease();
    l.joined({ commands: [0] }, clock.now);
    clock.now = 5_500;
    l.confirmed(5_400); // slow answer
    clock.now = 10_300;
    expect(l.held()).toBe(true);
    clock.now = 10_400;
    expect(l.held()).toBe(false);
  });

  it('a rebalance that takes the partitions away, or leaving the group, ends the lease at once', () => {
    const { l, clock, changes } = lease();
    l.joined({ commands: [0] }, clock.now);
    l.joined({}, clock.now);
    expect(l.held()).toBe(false);
    l.joined({ commands: [0] }, clock.now);
    l.released();
    expect(l.held()).toBe(false);
    expect(changes).toEqual(['active', 'standby', 'active', 'standby']);
  });

  it('refuses a non-positive validity', () => {
    expect(() => new GroupLease({ validityMs: 0 })).toThrow(RangeError);
  });

  it('validity: half the session by default, and always shorter than the session', () => {
    expect(leaseValidityFor(30_000)).toBe(15_000);
    expect(leaseValidityFor(8_000, 4_000)).toBe(4_000);
    expect(() => leaseValidityFor(8_000, 8_000)).toThrow(/shorter than the group session/);
  });
});
