import { ArgumentsHost, Catch, ExceptionFilter, HttpStatus } from '@nestjs/common';
import { ConflictError, NotFoundError, ValidationError } from '../errors';

const STATUS: ReadonlyArray<[new (...args: never[]) => Error, HttpStatus, string]> = [
  [ValidationError, HttpStatus.BAD_REQUEST, 'Bad Request'],
  [NotFoundError, HttpStatus.NOT_FOUND, 'Not Found'],
  [ConflictError, HttpStatus.CONFLICT, 'Conflict'],
];

/** The part of express's response used here (@types/express is not installed). */
interface HttpResponse {
  status(code: number): { json(body: unknown): void };
}

/** Maps use-case errors to HTTP, in the same body shape as Nest's own HttpExceptions. */
@Catch(ValidationError, NotFoundError, ConflictError)
export class UseCaseErrorFilter implements ExceptionFilter {
  catch(error: Error, host: ArgumentsHost): void {
    const [, statusCode, label] = STATUS.find(([type]) => error instanceof type) ?? [Error, 500, 'Error'];
    host
      .switchToHttp()
      .getResponse<HttpResponse>()
      .status(statusCode)
      .json({ statusCode, error: label, message: error.message });
  }
}
