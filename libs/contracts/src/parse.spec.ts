import { DEFAULT_LIMITS, ContractLimits } from './limits';
import { parseInteraction, parseItem, parseWith } from './parse';
import { AdapterEventSchema, RoundCommandSchema, ServingCommandSchema } from './control';

const NOW = Date.UTC(2026, 0, 1);
const limits: ContractLimits = { ...DEFAULT_LIMITS, now: () => NOW };
const good = {
  event_id: 'e-1',
  user_id: 'u1',
  item_id: 'i1',
  domain: 'beauty',
  ts: NOW - 1000,
  title: 'Lip balm &amp; more',
};

function reasonOf(raw: unknown, l: ContractLimits = limits): string {
  const text = typeof raw === 'string' ? raw : JSON.stringify(raw);
  const result = parseInteraction(Buffer.from(text), l);
  if (result.ok) throw new Error('expected a rejection');
  return result.reason;
}

describe('parseInteraction', () => {
  it('accepts a well-formed event and returns it unchanged', () => {
    const result = parseInteraction(Buffer.from(JSON.stringify(good)), limits);
    expect(result).toEqual({ ok: true, value: good });
  });

  it('rejects malformed JSON with the parser message', () => {
    expect(reasonOf('{"event_id": ')).toMatch(/^malformed JSON/);
  });

  it('rejects an empty (tombstone) message', () => {
    const result = parseInteraction(null, limits);
    expect(result.ok).toBe(false);
  });

  it.each([
    ['event_id', { ...good, event_id: undefined }, /event_id/],
    ['user_id empty', { ...good, user_id: '' }, /user_id: must not be empty/],
    ['item_id number', { ...good, item_id: 17 }, /item_id/],
    ['domain uppercase', { ...good, domain: 'Beauty' }, /domain: must be a lowercase slug/],
    ['ts string', { ...good, ts: '2020-01-01' }, /ts: must be a number/],
    ['ts fractional', { ...good, ts: 1.5 }, /ts: must be an integer/],
    ['ts negative', { ...good, ts: -5 }, /ts: must not be negative/],
    ['unknown field', { ...good, colour: 'red' }, /colour|Unrecognized/i],
  ])('rejects a bad field: %s', (_name, event, pattern) => {
    expect(reasonOf(event)).toMatch(pattern);
  });

  it('rejects timestamps far in the future', () => {
    expect(reasonOf({ ...good, ts: NOW + 2 * 24 * 3600 * 1000 })).toMatch(/future/);
  });

  it('rejects titles longer than the limit', () => {
    expect(reasonOf({ ...good, title: 'x'.repeat(2001) })).toMatch(/title: 2001 characters/);
  });

  it('rejects oversized messages before parsing them', () => {
    const small = { ...limits, maxMessageBytes: 50 };
    expect(reasonOf(good, small)).toMatch(/larger than the limit of 50/);
  });

  it('applies the domain allow-list only when configured', () => {
    const restricted = { ...limits, domainAllowList: ['games'] };
    expect(reasonOf(good, restricted)).toMatch(/not in the allow-list/);
    expect(parseInteraction(Buffer.from(JSON.stringify(good)), limits).ok).toBe(true);
  });
});

describe('parseItem', () => {
  it('accepts an item with attributes and rejects an empty title', () => {
    const item = { item_id: 'i1', domain: 'toys', title: 'Lego', attributes: { price: 9.5 } };
    expect(parseItem(JSON.stringify(item), limits)).toEqual({ ok: true, value: item });
    const bad = parseItem(JSON.stringify({ ...item, title: '' }), limits);
    expect(bad).toEqual({ ok: false, reason: 'title: must not be empty' });
  });
});

describe('control events', () => {
  it('discriminates round commands by kind', () => {
    const trigger = parseWith(RoundCommandSchema, {
      kind: 'trigger',
      command_id: 'c1',
      requested_by: 'op',
      ts: 1,
    });
    expect(trigger.ok && trigger.value.kind === 'trigger' && trigger.value.reason).toBe('');
    const cancel = parseWith(RoundCommandSchema, {
      kind: 'cancel',
      command_id: 'c2',
      requested_by: 'op',
      ts: 1,
    });
    expect(cancel.ok).toBe(false);
    expect(!cancel.ok && cancel.reason).toMatch(/round_id/);
  });

  it('requires a sha256 digest on published adapters', () => {
    const event = {
      kind: 'published',
      adapter_id: 'a1',
      adapter_kind: 'cpt',
      target_domains: ['games'],
      uri: 'file:///x',
      sha256: 'nope',
      lineage: {
        base_model: 'stories260K',
        base_model_sha256: 'b'.repeat(64),
        round_id: 'r1',
        trunk_id: null,
        cpt_adapter_id: null,
        data_watermark: 0,
      },
      ts: 1,
    };
    expect(parseWith(AdapterEventSchema, event).ok).toBe(false);
    expect(parseWith(AdapterEventSchema, { ...event, sha256: 'a'.repeat(64) }).ok).toBe(true);
  });

  it('requires the domain a serving rollback applies to (one adapter per domain)', () => {
    const rollback = { kind: 'rollback', command_id: 'c3', requested_by: 'op', ts: 1 };
    const without = parseWith(ServingCommandSchema, rollback);
    expect(!without.ok && without.reason).toMatch(/domain/);
    expect(parseWith(ServingCommandSchema, { ...rollback, domain: 'Games' }).ok).toBe(false);
    expect(parseWith(ServingCommandSchema, { ...rollback, domain: 'games', to_adapter_id: 'a1' })).toEqual({
      ok: true,
      value: { ...rollback, domain: 'games', to_adapter_id: 'a1' },
    });
  });
});
