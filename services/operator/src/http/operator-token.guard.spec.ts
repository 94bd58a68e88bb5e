import { ExecutionContext, ServiceUnavailableException, UnauthorizedException } from '@nestjs/common';
import { bearerToken, OperatorTokenGuard, tokensEqual } from './operator-token.guard';

/** A minimal HTTP execution context: the guard reads one header and may set one. */
function context(authorization?: string): { ctx: ExecutionContext; headers: Record<string, string> } {
  const headers: Record<string, string> = {};
  const request = { headers: authorization === undefined ? {} : { authorization } };
  const response = { setHeader: (k: string, v: string) => (headers[k] = v) };
  const ctx = {
    switchToHttp: () => ({ getRequest: () => request, getResponse: () => response }),
  } as unknown as ExecutionContext;
  return { ctx, headers };
}

describe('OperatorTokenGuard', () => {
  const guard = new OperatorTokenGuard({ OPERATOR_TOKEN: 's3cret' });

  it('lets the right token through', () => {
    expect(guard.canActivate(context('Bearer s3cret').ctx)).toBe(true);
    expect(guard.canActivate(context('bearer   s3cret ').ctx)).toBe(true);
  });

  it.each([undefined, 'Bearer', 'Basic s3cret', 'Bearer s3cre', 'Bearer s3cret2', 's3cret'])(
    'answers 401 with a challenge for %p',
    (header) => {
      const { ctx, headers } = context(header);
      expect(() => guard.canActivate(ctx)).toThrow(UnauthorizedException);
      expect(headers['WWW-Authenticate']).toMatch(/^Bearer/);
    },
  );

  it('refuses every mutation with 503 and says what to set when no token is configured', () => {
    const open = new OperatorTokenGuard({ OPERATOR_TOKEN: null });
    expect(() => open.canActivate(context('Bearer anything').ctx)).toThrow(ServiceUnavailableException);
    expect(() => open.canActivate(context('Bearer anything').ctx)).toThrow(/OPERATOR_TOKEN/);
  });
});

describe('token helpers', () => {
  it('compares tokens of any lengths', () => {
    expect(tokensEqual('a', 'a')).toBe(true);
    expect(tokensEqual('a', 'ab')).toBe(false);
    expect(tokensEqual('', 'x')).toBe(false);
  });
  it('parses bearer headers', () => {
    expect(bearerToken('Bearer abc')).toBe('abc');
    expect(bearerToken('Bearer a b')).toBeNull();
    expect(bearerToken(undefined)).toBeNull();
  });
});
