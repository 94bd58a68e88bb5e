import { Body, Controller, Get, Headers, HttpCode, Post, Query, UseGuards } from '@nestjs/common';
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
import { AcceptedCommand } from '../ports';
import { DriftView, OperatorQueries, ServingView } from '../queries/operator.queries';
import {
  RollbackServingBody,
  RollbackServingBodySchema,
} from '../use-cases/rollback-serving/rollback-serving.command';
import { RollbackServing } from '../use-cases/rollback-serving/rollback-serving.usecase';
import { AcceptedCommandDto, ErrorDto, RollbackBodyDto } from './dto';
import { OperatorTokenGuard } from './operator-token.guard';
import { DriftQuerySchema, ListQuerySchema, requestedBy } from './schemas';
import { ZodPipe } from './zod.pipe';

@ApiTags('serving & drift')
@Controller('v1')
export class MonitoringController {
  constructor(
    private readonly rollback: RollbackServing,
    private readonly queries: OperatorQueries,
  ) {}

  @Get('serving')
  @ApiOperation({
    summary: 'The adapter serving each domain now and the recent switches / rollbacks / refused loads',
  })
  @ApiQuery({ name: 'limit', required: false, type: Number })
  @ApiOkResponse({
    description:
      "{ domains: ServingEvent[] (per domain, the switch/rollback that put its adapter in; domain '' = legacy, every domain), events: ServingEvent[] }",
  })
  serving(@Query(new ZodPipe(ListQuerySchema, 'query')) query: { limit: number }): Promise<ServingView> {
    return this.queries.serving(query.limit);
  }

  @Post('serving/rollback')
  @HttpCode(202)
  @UseGuards(OperatorTokenGuard)
  @ApiBearerAuth()
  @ApiOperation({
    summary:
      "Ask serving to roll back one domain's adapter (to a given adapter, or to the domain's previous one)",
  })
  @ApiBody({ type: RollbackBodyDto, required: true })
  @ApiAcceptedResponse({ type: AcceptedCommandDto })
  @ApiBadRequestResponse({ type: ErrorDto })
  @ApiNotFoundResponse({ type: ErrorDto })
  @ApiUnauthorizedResponse({ type: ErrorDto })
  rollbackServing(
    @Body(new ZodPipe(RollbackServingBodySchema, 'body')) body: RollbackServingBody,
    @Headers('x-requested-by') who: string | undefined,
  ): Promise<AcceptedCommand> {
    return this.rollback.execute({ ...body, requestedBy: requestedBy(who) });
  }

  @Get('drift')
  @ApiOperation({
    summary: 'HR@1 time series of the serving adapter per domain, drift alerts, and chart markers',
  })
  @ApiQuery({ name: 'domain', required: false })
  @ApiQuery({ name: 'from_ms', required: false, type: Number })
  @ApiQuery({ name: 'limit', required: false, type: Number })
  @ApiOkResponse({
    description:
      '{ series, alerts, promotions, rounds, stream } — markers carry stream_ms: the newest event time ingested when they happened',
  })
  @ApiBadRequestResponse({ type: ErrorDto })
  drift(
    @Query(new ZodPipe(DriftQuerySchema, 'query'))
    query: {
      domain?: string;
      from_ms?: number;
      limit: number;
    },
  ): Promise<DriftView> {
    return this.queries.drift({
      ...(query.domain === undefined ? {} : { domain: query.domain }),
      ...(query.from_ms === undefined ? {} : { fromMs: query.from_ms }),
      limit: query.limit,
    });
  }
}
