import {
  ExecutionContext,
  HttpException,
  ServiceUnavailableException,
  UnauthorizedException,
} from '@nestjs/common';
import { hasBody, isJsonMediaType, MutationGuard } from './mutation.guard';

function context(headers: Record<string, string>): ExecutionContext {
  const request = { headers };
  const response = { setHeader: () => undefined };
  return {
    switchToHttp: () => ({ getRequest: () => request, getResponse: () => response }),
  } as unknown as ExecutionContext;
}

const status = (fn: () => unknown): number => {
  try {
    fn();
    return 200;
  } catch (err) {
    return (err as HttpException).getStatus();
  }
};

describe('MutationGuard', () => {
  const guard = new MutationGuard({
    token: 's3cret',
    tokenVariable: 'X_TOKEN',
    tokenName: 'test token',
    realm: 'test',
  });
  const auth = { authorization: 'Bearer s3cret' };

  it('needs the token first: 401 without it, whatever the body', () => {
    expect(() => guard.canActivate(context({}))).toThrow(UnauthorizedException);
    expect(
      status(() => guard.canActivate(context({ 'content-type': 'text/plain', 'content-length': '2' }))),
    ).toBe(401);
  });

  it('accepts JSON bodies and requests without a body; refuses other media types with 415', () => {
    expect(
      guard.canActivate(context({ ...auth, 'content-type': 'application/json', 'content-length': '2' })),
    ).toBe(true);
    expect(guard.canActivate(context({ ...auth, 'content-type': 'application/json; charset=utf-8' }))).toBe(
      true,
    );
    expect(guard.canActivate(context({ ...auth }))).toBe(true);
    expect(guard.canActivate(context({ ...auth, 'content-length': '0' }))).toBe(true);
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x'])
      expect(
        status(() => guard.canActivate(context({ ...auth, 'content-type': type, 'content-length': '5' }))),
      ).toBe(415);
    // A body with no type at all is not JSON either.
    expect(status(() => guard.canActivate(context({ ...auth, 'content-length': '5' })))).toBe(415);
    expect(status(() => guard.canActivate(context({ ...auth, 'transfer-encoding': 'chunked' })))).toBe(415);
  });

  it('refuses every mutation with 503 when no token is configured', () => {
    const closed = new MutationGuard({
      token: null,
      tokenVariable: 'X_TOKEN',
      tokenName: 'test token',
      realm: 'test',
    });
    expect(() => closed.canActivate(context(auth))).toThrow(ServiceUnavailableException);
    expect(() => closed.canActivate(context(auth))).toThrow(/X_TOKEN/);
  });

  it('recognises JSON media types and bodies', () => {
    expect(isJsonMediaType('application/merge-patch+json')).toBe(true);
    expect(isJsonMediaType('APPLICATION/JSON')).toBe(true);
    expect(isJsonMediaType('text/json')).toBe(false);
    expect(isJsonMediaType(undefined)).toBe(false);
    expect(hasBody({ 'content-length': '0' })).toBe(false);
    expect(hasBody({})).toBe(false);
  });
});
