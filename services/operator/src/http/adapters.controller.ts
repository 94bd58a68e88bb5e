import { Body, Controller, Get, Headers, HttpCode, Param, Post, Query, UseGuards } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBadRequestResponse,
  ApiBearerAuth,
  ApiBody,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiQuery,
  ApiTags,
  ApiUnauthorizedResponse,
} from '@nestjs/swagger';
import type { EvaluationRecord, StoredPromotion } from '@cprec/clickhouse';
import { AcceptedCommand } from '../ports';
import { AdapterSummary } from '../queries/adapter-summary';
import { AdaptersView, OperatorQueries } from '../queries/operator.queries';
import {
  PromoteAdapterBody,
  PromoteAdapterBodySchema,
} from '../use-cases/promote-adapter/promote-adapter.command';
import { PromoteAdapter } from '../use-cases/promote-adapter/promote-adapter.usecase';
import { AcceptedCommandDto, ErrorDto, PromoteAdapterBodyDto } from './dto';
import { OperatorTokenGuard } from './operator-token.guard';
import { EvaluationsQuerySchema, IdSchema, ListQuerySchema, requestedBy } from './schemas';
import { ZodPipe } from './zod.pipe';

@ApiTags('adapters')
@Controller('v1')
export class AdaptersController {
  constructor(
    private readonly promote: PromoteAdapter,
    private readonly queries: OperatorQueries,
  ) {}

  @Get('adapters')
  @ApiOperation({
    summary:
      'Adapters, newest first, with HR@1 per domain and status (serving / promoted / rejected / pending)',
  })
  @ApiQuery({ name: 'limit', required: false, type: Number })
  @ApiOkResponse({
    description: '{ adapters: Adapter[] (each with serving_domains), serving: { domain: adapter_id } }',
  })
  adapters(@Query(new ZodPipe(ListQuerySchema, 'query')) query: { limit: number }): Promise<AdaptersView> {
    return this.queries.adapters(query.limit);
  }

  @Get('adapters/:id')
  @ApiOperation({ summary: 'One adapter with all its evaluations' })
  @ApiNotFoundResponse({ type: ErrorDto })
  adapter(
    @Param('id', new ZodPipe(IdSchema, 'adapter id')) id: string,
  ): Promise<{ adapter: AdapterSummary; evaluations: EvaluationRecord[] }> {
    return this.queries.adapter(id);
  }

  @Post('adapters/:id/promote')
  @HttpCode(202)
  @UseGuards(OperatorTokenGuard)
  @ApiBearerAuth()
  @ApiOperation({ summary: 'Ask the evaluator to promote an adapter, bypassing (and recording) the gate' })
  @ApiBody({ type: PromoteAdapterBodyDto, required: false })
  @ApiAcceptedResponse({ type: AcceptedCommandDto })
  @ApiBadRequestResponse({ type: ErrorDto })
  @ApiNotFoundResponse({ type: ErrorDto })
  @ApiUnauthorizedResponse({ type: ErrorDto })
  promoteAdapter(
    @Param('id', new ZodPipe(IdSchema, 'adapter id')) id: string,
    @Body(new ZodPipe(PromoteAdapterBodySchema, 'body')) body: PromoteAdapterBody,
    @Headers('x-requested-by') who: string | undefined,
  ): Promise<AcceptedCommand> {
    return this.promote.execute({ ...body, adapterId: id, requestedBy: requestedBy(who) });
  }

  @Get('evaluations')
  @ApiOperation({ summary: 'Offline evaluations, newest first' })
  @ApiQuery({ name: 'adapter_id', required: false })
  @ApiQuery({ name: 'domain', required: false })
  @ApiQuery({ name: 'limit', required: false, type: Number })
  @ApiOkResponse({ description: '{ evaluations: Evaluation[] }' })
  @ApiBadRequestResponse({ type: ErrorDto })
  async evaluations(
    @Query(new ZodPipe(EvaluationsQuerySchema, 'query'))
    query: {
      adapter_id?: string;
      domain?: string;
      limit: number;
    },
  ): Promise<{ evaluations: EvaluationRecord[] }> {
    return {
      evaluations: await this.queries.evaluations({
        ...(query.adapter_id === undefined ? {} : { adapterId: query.adapter_id }),
        ...(query.domain === undefined ? {} : { domain: query.domain }),
        limit: query.limit,
      }),
    };
  }

  @Get('promotions')
  @ApiOperation({ summary: 'Gate decisions (promoted / rejected with reasons), newest first' })
  @ApiQuery({ name: 'limit', required: false, type: Number })
  async promotions(
    @Query(new ZodPipe(ListQuerySchema, 'query')) query: { limit: number },
  ): Promise<{ promotions: StoredPromotion[] }> {
    return { promotions: await this.queries.promotions(query.limit) };
  }
}
