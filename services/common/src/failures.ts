import { ZodError } from 'zod';
import { isClickHouseDataError, isClickHouseUnavailable } from '@cprec/clickhouse';
import {
  isKafkaUnavailable,
  isPermanentKafkaError,
  RejectedMessage,
  type FailureClass,
} from '@cprec/messaging';

/**
 * The services' one failure classifier (see FailureClass): refused messages and data errors are
 * permanent, a down or overloaded ClickHouse or Kafka is unavailable, anything else is transient
 * (bounded retries, then the dependencies decide).
 */
export function classifyFailure(err: unknown): FailureClass {
  if (err instanceof RejectedMessage) return 'permanent';
  if (err instanceof ZodError || err instanceof SyntaxError) return 'permanent';
  if (isClickHouseDataError(err) || isPermanentKafkaError(err)) return 'permanent';
  if (isClickHouseUnavailable(err) || isKafkaUnavailable(err)) return 'unavailable';
  return 'transient';
}
