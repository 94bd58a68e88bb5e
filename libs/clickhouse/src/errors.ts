import { SqlLiteralError } from './literal';

/**
 * What a ClickHouse failure means for the message that caused it. Servers ≥ 22 name the error
 * (`code`/`type` on the client's ClickHouseError); 18.16 only writes `Code: 25, e.displayText() =
 * DB::Exception: …`, so the code is read from the text as well.
 */

/** Errors about the data itself: retrying the same rows gives the same refusal. */
const DATA_ERROR_CODES = new Set([
  6, // CANNOT_PARSE_TEXT
  25, // CANNOT_PARSE_ESCAPE_SEQUENCE (e.g. an unpaired surrogate in JSON)
  26, // CANNOT_PARSE_QUOTED_STRING
  27, // CANNOT_PARSE_INPUT_ASSERTION_FAILED
  32, // ATTEMPT_TO_READ_AFTER_EOF
  33, // CANNOT_READ_ALL_DATA
  38, // CANNOT_PARSE_DATE
  41, // CANNOT_PARSE_DATETIME
  53, // TYPE_MISMATCH
  62, // SYNTAX_ERROR (also "max query size exceeded": a statement too large for this value)
  69, // ARGUMENT_OUT_OF_BOUND
  70, // CANNOT_CONVERT_TYPE
  72, // CANNOT_PARSE_NUMBER
  117, // INCORRECT_DATA
  131, // TOO_LARGE_STRING_SIZE
  168, // TOO_DEEP_AST
  306, // TOO_DEEP_RECURSION
]);

/** The server is there but cannot take work now, or the schema it needs is missing: wait, do not blame the rows. */
const UNAVAILABLE_CODES = new Set([
  60, // UNKNOWN_TABLE (database dropped or not migrated yet)
  81, // UNKNOWN_DATABASE
  159, // TIMEOUT_EXCEEDED
  164, // READONLY
  202, // TOO_MANY_SIMULTANEOUS_QUERIES
  203, // NO_FREE_CONNECTION
  209, // SOCKET_TIMEOUT
  210, // NETWORK_ERROR
  236, // ABORTED
  241, // MEMORY_LIMIT_EXCEEDED
  242, // TABLE_IS_READ_ONLY
  252, // TOO_MANY_PARTS
  319, // UNKNOWN_STATUS_OF_INSERT
  425, // SYSTEM_ERROR
]);

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
]);

interface ErrorLike {
  code?: unknown;
  message?: unknown;
  cause?: unknown;
}

/** The ClickHouse error code of a server error, or null (network errors, other errors). */
export function clickHouseErrorCode(err: unknown): number | null {
  const e = err as ErrorLike | null;
  if (!e || typeof e !== 'object') return null;
  if (typeof e.code === 'string' && /^\d+$/.test(e.code)) return Number(e.code);
  if (typeof e.message === 'string') {
    const match = /\bCode: (\d+)[,.]/.exec(e.message);
    if (match) return Number(match[1]);
  }
  return null;
}

/** True when the rows (or the values of a statement) are what ClickHouse refuses. */
export function isClickHouseDataError(err: unknown): boolean {
  if (err instanceof SqlLiteralError || err instanceof RangeError) return true;
  const code = clickHouseErrorCode(err);
  return code !== null && DATA_ERROR_CODES.has(code);
}

/** True when ClickHouse is unreachable, overloaded or missing the schema: not the rows' fault. */
export function isClickHouseUnavailable(err: unknown): boolean {
  const code = clickHouseErrorCode(err);
  if (code !== null) return UNAVAILABLE_CODES.has(code);
  for (let e = err as ErrorLike | null, depth = 0; e && typeof e === 'object' && depth < 4; depth++) {
    if (typeof e.code === 'string' && NETWORK_CODES.has(e.code)) return true;
    if (
      typeof e.message === 'string' &&
      /socket hang up|Timeout error|ECONNREFUSED|ECONNRESET|other side closed/i.test(e.message)
    )
      return true;
    e = e.cause as ErrorLike | null;
  }
  return false;
}

/** Pings with a bound on the wait: null when the server answers, else why not. */
export async function clickHouseProblem(
  ping: () => Promise<boolean>,
  timeoutMs = 5_000,
): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const ok = await Promise.race([
      ping(),
      new Promise<boolean>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return ok ? null : 'ClickHouse (ping failed)';
  } catch (err) {
    return `ClickHouse (${err instanceof Error ? err.message : String(err)})`;
  } finally {
    clearTimeout(timer);
  }
}
