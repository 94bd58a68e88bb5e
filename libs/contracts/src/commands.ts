/**
 * The lifetime of a command (a message asking an actor to do something: trigger a round, promote,
 * roll back, freeze a split). A command older than its lifetime is dropped by the consumer, so a
 * new consumer group replaying its mailbox from the beginning never acts on old requests; one
 * dated further in the future than its lifetime is dropped as well (it would otherwise never
 * expire). Each consumer states the lifetime in its configuration (`*_COMMAND_MAX_AGE_MS`).
 */
export function commandAgeProblem(ts: number, now: number, maxAgeMs: number): string | null {
  const age = now - ts;
  if (age > maxAgeMs)
    return `is ${formatMs(age)} old, older than its lifetime of ${formatMs(maxAgeMs)}; dropped`;
  if (-age > maxAgeMs)
    return `is dated ${formatMs(-age)} in the future, more than its lifetime of ${formatMs(maxAgeMs)}; dropped`;
  return null;
}

function formatMs(ms: number): string {
  if (ms < 10_000) return `${Math.round(ms)} ms`;
  if (ms < 7_200_000) return `${Math.round(ms / 1000)} s`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}
