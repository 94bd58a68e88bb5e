import { createHash, timingSafeEqual } from 'node:crypto';
import {
  CanActivate,
  ExecutionContext,
  HttpException,
  HttpStatus,
  ServiceUnavailableException,
  UnauthorizedException,
} from '@nestjs/common';

/**
 * Every HTTP endpoint that changes state (the operator's commands, serving's rollback) passes this
 * guard: a bearer token, compared in constant time, and JSON bodies only. A browser can send a
 * cross-site POST without a preflight only with a "simple" content type (text/plain, form
 * encodings) and never with an Authorization header, so requiring both leaves no CSRF path; the
 * 415 also keeps a text/plain body from being read as "no body" (express parses only JSON here).
 */

/** Compares two secrets in time independent of where they differ (both hashed: equal lengths, length not leaked). */
export function tokensEqual(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(header: string | undefined): string | null {
  if (header === undefined) return null;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return match ? match[1]! : null;
}

/** `application/json` or any `+json` type, parameters (charset) allowed. */
export function isJsonMediaType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  return type === 'application/json' || /^application\/[a-z0-9.+-]+\+json$/.test(type);
}

/** The parts of express's request/response the guard touches (@types/express is not installed). */
interface HttpRequest {
  headers: {
    authorization?: string;
    'content-type'?: string;
    'content-length'?: string;
    'transfer-encoding'?: string;
  };
}
interface HttpResponse {
  setHeader(name: string, value: string): void;
}

/** True when the request carries a body (a length above zero, or a chunked one). */
export function hasBody(headers: HttpRequest['headers']): boolean {
  const length = headers['content-length'];
  if (length !== undefined) return Number(length) > 0;
  return headers['transfer-encoding'] !== undefined;
}

export interface MutationGuardOptions {
  /** The expected token; null refuses every mutation with 503 (never open by default). */
  token: string | null;
  /** Named in the 503 message: the variable to set. */
  tokenVariable: string;
  /** Named in the 401 message: `invalid <tokenName>`. */
  tokenName: string;
  realm: string;
}

/** Token first (401/503), then the media type (415). */
export class MutationGuard implements CanActivate {
  constructor(private readonly options: MutationGuardOptions) {}

  canActivate(context: ExecutionContext): boolean {
    const http = context.switchToHttp();
    const request = http.getRequest<HttpRequest>();
    const expected = this.options.token;
    if (expected === null) {
      throw new ServiceUnavailableException(
        `mutations are disabled: set ${this.options.tokenVariable} in the service environment and send it as "Authorization: Bearer <token>"`,
      );
    }
    const token = bearerToken(request.headers.authorization);
    if (token === null || !tokensEqual(token, expected)) {
      http.getResponse<HttpResponse>().setHeader('WWW-Authenticate', `Bearer realm="${this.options.realm}"`);
      throw new UnauthorizedException(
        token === null
          ? 'missing "Authorization: Bearer <token>" header'
          : `invalid ${this.options.tokenName}`,
      );
    }
    const contentType = request.headers['content-type'];
    if ((hasBody(request.headers) || contentType !== undefined) && !isJsonMediaType(contentType)) {
      throw new HttpException(
        {
          statusCode: HttpStatus.UNSUPPORTED_MEDIA_TYPE,
          error: 'Unsupported Media Type',
          message: `the body must be JSON ("Content-Type: application/json"), not ${contentType === undefined ? 'an untyped body' : JSON.stringify(contentType)}`,
        },
        HttpStatus.UNSUPPORTED_MEDIA_TYPE,
      );
    }
    return true;
  }
}
