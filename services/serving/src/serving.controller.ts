import { Body, Controller, Get, HttpCode, HttpException, Post, Query, UseGuards } from '@nestjs/common';
import { RollbackRefusedError } from './adapter-manager';
import {
  AdapterQuerySchema,
  parseBody,
  RecommendRequestSchema,
  RollbackRequestSchema,
} from './recommend-request';
import { ServingError, ServingService, type RecommendResponse } from './serving.service';
import { ServingTokenGuard } from './serving-token.guard';

const fail = (status: number, message: string): HttpException =>
  new HttpException({ statusCode: status, error: status < 500 ? 'Bad Request' : 'Error', message }, status);

@Controller('v1')
export class ServingController {
  constructor(private readonly serving: ServingService) {}

  /** Times a handler and maps its failures to statuses (counted in the error metric). */
  private async measured<T>(route: string, run: () => Promise<T>): Promise<T> {
    const started = performance.now();
    let status = 200;
    try {
      return await run();
    } catch (err) {
      if (err instanceof ServingError) {
        status = err.status;
        throw fail(err.status, err.message);
      }
      if (err instanceof HttpException) {
        status = err.getStatus();
        throw err;
      }
      status = 500;
      throw fail(500, (err as Error).message);
    } finally {
      this.serving.observe(route, status, (performance.now() - started) / 1000);
    }
  }

  @Post('recommend')
  @HttpCode(200)
  recommend(@Body() body: unknown): Promise<RecommendResponse> {
    return this.measured('recommend', async () => {
      const parsed = parseBody(RecommendRequestSchema, body);
      if (!parsed.ok) throw new ServingError(400, parsed.message);
      return this.serving.recommend(parsed.value);
    });
  }

  /**
   * Rolls back one domain's adapter (`{ domain, to_adapter_id? }`); the other domains keep theirs.
   * Changes what is served: the serving (or operator) token and a JSON body are required.
   */
  @Post('rollback')
  @HttpCode(200)
  @UseGuards(ServingTokenGuard)
  rollback(@Body() body: unknown) {
    return this.measured('rollback', async () => {
      const parsed = parseBody(RollbackRequestSchema, body ?? {});
      if (!parsed.ok) throw new ServingError(400, parsed.message);
      const { domain } = parsed.value;
      let outcome;
      try {
        outcome = await this.serving.rollback(domain, parsed.value.to_adapter_id, 'POST /v1/rollback');
      } catch (err) {
        if (err instanceof RollbackRefusedError)
          throw new ServingError(/unknown adapter/.test(err.message) ? 404 : 409, err.message);
        throw err;
      }
      if (!outcome.ok)
        throw new ServingError(
          502,
          `adapter ${outcome.adapterId} failed to load (${outcome.error}); ${this.serving.servingOf(domain)?.adapterId ?? 'the current adapter'} keeps serving ${domain}`,
        );
      return {
        domain,
        adapter_id: outcome.adapterId,
        previous_adapter_id: outcome.previousAdapterId,
        changed: outcome.changed,
      };
    });
  }

  /**
   * What serves now and what a rollback would return to: per domain with an adapter (or a
   * rollback history), and the base model that answers every other domain; `?domain=` for one
   * domain (the base model's entry when it has no adapter).
   */
  @Get('adapter')
  adapter(@Query() query: unknown) {
    const parsed = parseBody(AdapterQuerySchema, query ?? {});
    if (!parsed.ok) throw fail(400, parsed.message);
    const s = this.serving.serving;
    if (!s) throw fail(503, 'serving is starting');
    const view = (d: { domain: string; adapterId: string; adapterVersion: string; history: string[] }) => ({
      domain: d.domain,
      adapter_id: d.adapterId,
      adapter_version: d.adapterVersion,
      rollback_history: d.history,
    });
    if (parsed.value.domain !== undefined) return view(this.serving.servingOf(parsed.value.domain)!);
    return { base: { adapter_id: 'base', adapter_version: s.baseVersion }, domains: s.domains.map(view) };
  }
}
