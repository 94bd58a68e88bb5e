/**
 * Who talks to Kafka and ClickHouse. Each service has a principal of its own — the Kafka SASL/SCRAM
 * user and the ClickHouse user share its name — and `admin` is the infra scripts' and the test
 * harness's (it creates topics, databases and ACLs). `infra/local/up` generates one password per
 * principal and server into `.cprec/secrets/cprec.env` (mode 0600):
 *
 *   CPREC_KAFKA_PASSWORD_<PRINCIPAL>=…       e.g. CPREC_KAFKA_PASSWORD_INGEST
 *   CPREC_CLICKHOUSE_PASSWORD_<PRINCIPAL>=…  e.g. CPREC_CLICKHOUSE_PASSWORD_SERVING
 *
 * A process with that file in its environment picks its own principal's password; a deployment
 * that hands each service only its own secret sets the pair CPREC_KAFKA_USERNAME /
 * CPREC_KAFKA_PASSWORD (and CPREC_CLICKHOUSE_USER / CPREC_CLICKHOUSE_PASSWORD) instead.
 */
export const SERVICE_PRINCIPALS = [
  'ingest',
  'sequencer',
  'trainer',
  'evaluator',
  'serving',
  'operator',
  // The platforms that feed events (`cprec replay`, the live stream of `npm start`, a platform's
  // own producer): they may write interactions and items and nothing else, so feeding cprec no
  // longer takes the admin super user's password.
  'platform',
] as const;
export type ServicePrincipal = (typeof SERVICE_PRINCIPALS)[number];

/** The infra scripts', the CLI's and the test harness's principal (Kafka super user, ClickHouse DDL). */
export const ADMIN_PRINCIPAL = 'admin';
export type Principal = ServicePrincipal | typeof ADMIN_PRINCIPAL;
export const PRINCIPALS: readonly Principal[] = [ADMIN_PRINCIPAL, ...SERVICE_PRINCIPALS];

/**
 * Principals that only read ClickHouse (a `readonly` profile: no INSERT, no DDL). Serving publishes
 * what it does on `cprec.serving-events.v1` (stored by the evaluator) instead of writing a table.
 */
export const CLICKHOUSE_READONLY_PRINCIPALS: readonly Principal[] = ['serving', 'operator', 'platform'];

export type SecretSystem = 'kafka' | 'clickhouse';

/** The variable holding `principal`'s password for `system`, e.g. CPREC_KAFKA_PASSWORD_INGEST. */
export function principalPasswordVariable(system: SecretSystem, principal: string): string {
  if (!/^[a-z][a-z0-9_]*$/.test(principal))
    throw new Error(`principal ${JSON.stringify(principal)} must match [a-z][a-z0-9_]*`);
  return `CPREC_${system.toUpperCase()}_PASSWORD_${principal.toUpperCase()}`;
}

export interface Credentials {
  username: string;
  password: string;
}

export interface CredentialVariables {
  /** The explicit username variable, e.g. CPREC_KAFKA_USERNAME. */
  username: string;
  /** The explicit password variable, e.g. CPREC_KAFKA_PASSWORD. */
  password: string;
  /**
   * The user a password given without a username belongs to (ClickHouse: `default`, as before
   * principals existed); without one, a lone password is a mistake.
   */
  implicitUsername?: string;
}

/**
 * The credentials a process uses for `system`, from its environment:
 *  1. the explicit pair (`vars.username`, `vars.password`) when the username is set;
 *  2. else `principal` with its CPREC_<SYSTEM>_PASSWORD_<PRINCIPAL>, when that is set;
 *  3. else a lone explicit password for `vars.implicitUsername`, when there is one;
 *  4. else null: the server is expected to accept the process without credentials (an
 *     installation without authentication, CPREC_AUTH=off).
 * A username without its password, or (without an implicit username) a password without its
 * username, is a configuration mistake and throws rather than connecting as somebody else.
 */
export function credentialsFromEnv(
  system: SecretSystem,
  principal: string,
  vars: CredentialVariables,
  env: NodeJS.ProcessEnv = process.env,
): Credentials | null {
  const username = env[vars.username];
  const password = env[vars.password];
  if (username !== undefined && username !== '') {
    if (password === undefined) throw new Error(`${vars.username} is set but ${vars.password} is not`);
    return { username, password };
  }
  const own = env[principalPasswordVariable(system, principal)];
  if (own !== undefined && own !== '') return { username: principal, password: own };
  if (password !== undefined && password !== '') {
    if (vars.implicitUsername === undefined)
      throw new Error(`${vars.password} is set but ${vars.username} is not`);
    return { username: vars.implicitUsername, password };
  }
  return null;
}

/** The variables that name one explicit identity for every client of a process. */
export const EXPLICIT_CREDENTIAL_VARIABLES = [
  'CPREC_KAFKA_USERNAME',
  'CPREC_KAFKA_PASSWORD',
  'CPREC_CLICKHOUSE_USER',
  'CPREC_CLICKHOUSE_PASSWORD',
] as const;

/**
 * The environment a launcher (`cprec demo`, the test harness) gives a service it starts: its own
 * minus the explicit identity, so each service runs as its own principal (picking its line of the
 * secrets file) rather than as whoever launched it.
 */
export function serviceEnvironment(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const copy = { ...env };
  for (const name of EXPLICIT_CREDENTIAL_VARIABLES) delete copy[name];
  return copy;
}
