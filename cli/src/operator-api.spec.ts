import { callOperator, formatNumber, operatorApiFromEnv, renderTable } from './operator-api';

describe('renderTable', () => {
  it('pads columns to the widest cell and underlines the header', () => {
    expect(
      renderTable(
        ['id', 'state'],
        [
          ['r1', 'queued'],
          ['round-22', 'published'],
        ],
      ),
    ).toBe('id        state\n--------  ---------\nr1        queued\nround-22  published\n');
  });
  it('keeps cells on one line', () => {
    expect(renderTable(['a'], [['x\ny']])).toBe('a\n---\nx y\n');
  });
});

describe('operator API options', () => {
  it('defaults to the local operator and no token', () => {
    expect(operatorApiFromEnv({})).toEqual({ url: 'http://127.0.0.1:8100', token: null });
    expect(operatorApiFromEnv({ CPREC_OPERATOR_URL: 'http://h:1', CPREC_OPERATOR_TOKEN: ' t ' })).toEqual({
      url: 'http://h:1',
      token: 't',
    });
  });
  it('refuses a mutation without a token before sending anything', async () => {
    await expect(
      callOperator({ url: 'http://127.0.0.1:9', token: null }, 'POST', '/v1/rounds', {}),
    ).rejects.toThrow(/CPREC_OPERATOR_TOKEN/);
  });
  it('formats missing numbers as a dash', () => {
    expect(formatNumber(null, 2)).toBe('-');
    expect(formatNumber(Number.NaN, 2)).toBe('-');
    expect(formatNumber(0.12345, 3)).toBe('0.123');
  });
});
