import { createHash, timingSafeEqual } from 'node:crypto';
import {
  CanActivate,
  ExecutionContext,
  Inject,
  Injectable,
  ServiceUnavailableException,
  UnauthorizedException,
} from '@nestjs/common';
import { OPERATOR_CONFIG, OperatorConfig } from '../config';

/**
 * Compares two secrets in time independent of where they differ. Both sides are hashed first so
 * the lengths are equal (timingSafeEqual requires it) and the token's length does not leak.
 */
export function tokensEqual(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(header: string | undefined): string | null {
  if (header === undefined) return null;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return match ? match[1] : null;
}

/** The parts of express's request/response the guard touches (@types/express is not installed). */
interface HttpRequest {
  headers: { authorization?: string };
}
interface HttpResponse {
  setHeader(name: string, value: string): void;
}

/** Guards mutating endpoints with the configured bearer token (OPERATOR_TOKEN). */
@Injectable()
export class OperatorTokenGuard implements CanActivate {
  constructor(@Inject(OPERATOR_CONFIG) private readonly config: Pick<OperatorConfig, 'OPERATOR_TOKEN'>) {}

  canActivate(context: ExecutionContext): boolean {
    const expected = this.config.OPERATOR_TOKEN;
    if (expected === null) {
      throw new ServiceUnavailableException(
        'mutations are disabled: set OPERATOR_TOKEN in the operator environment and send it as "Authorization: Bearer <token>"',
      );
    }
    const http = context.switchToHttp();
    const token = bearerToken(http.getRequest<HttpRequest>().headers.authorization);
    if (token === null || !tokensEqual(token, expected)) {
      http.getResponse<HttpResponse>().setHeader('WWW-Authenticate', 'Bearer realm="cprec-operator"');
      throw new UnauthorizedException(
        token === null ? 'missing "Authorization: Bearer <token>" header' : 'invalid operator token',
      );
    }
    return true;
  }
}
