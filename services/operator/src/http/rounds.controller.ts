import { Body, Controller, Get, Headers, HttpCode, Param, Post, Query, UseGuards } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBadRequestResponse,
  ApiBearerAuth,
  ApiBody,
  ApiConflictResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiQuery,
  ApiServiceUnavailableResponse,
  ApiTags,
  ApiUnauthorizedResponse,
} from '@nestjs/swagger';
import type { StoredRoundState } from '@cprec/clickhouse';
import { AcceptedCommand } from '../ports';
import { OperatorQueries, RoundDetail } from '../queries/operator.queries';
import { CancelRound } from '../use-cases/cancel-round/cancel-round.usecase';
import { TriggerRoundBody, TriggerRoundBodySchema } from '../use-cases/trigger-round/trigger-round.command';
import { TriggerRound } from '../use-cases/trigger-round/trigger-round.usecase';
import { AcceptedCommandDto, ErrorDto, TriggerRoundBodyDto } from './dto';
import { OperatorTokenGuard } from './operator-token.guard';
import { IdSchema, ListQuerySchema, requestedBy, RoundQuerySchema } from './schemas';
import { ZodPipe } from './zod.pipe';

@ApiTags('rounds')
@Controller('v1/rounds')
export class RoundsController {
  constructor(
    private readonly trigger: TriggerRound,
    private readonly cancel: CancelRound,
    private readonly queries: OperatorQueries,
  ) {}

  @Post()
  @HttpCode(202)
  @UseGuards(OperatorTokenGuard)
  @ApiBearerAuth()
  @ApiOperation({ summary: 'Trigger a refresh round (publishes a RoundCommand to the trainer)' })
  @ApiBody({ type: TriggerRoundBodyDto, required: false })
  @ApiAcceptedResponse({ type: AcceptedCommandDto })
  @ApiBadRequestResponse({ type: ErrorDto })
  @ApiUnauthorizedResponse({ type: ErrorDto })
  @ApiServiceUnavailableResponse({ description: 'OPERATOR_TOKEN is not configured', type: ErrorDto })
  triggerRound(
    @Body(new ZodPipe(TriggerRoundBodySchema, 'body')) body: TriggerRoundBody,
    @Headers('x-requested-by') who: string | undefined,
  ): Promise<AcceptedCommand> {
    return this.trigger.execute({ ...body, requestedBy: requestedBy(who) });
  }

  @Post(':id/cancel')
  @HttpCode(202)
  @UseGuards(OperatorTokenGuard)
  @ApiBearerAuth()
  @ApiOperation({ summary: 'Cancel a round that has not finished' })
  @ApiAcceptedResponse({ type: AcceptedCommandDto })
  @ApiNotFoundResponse({ type: ErrorDto })
  @ApiConflictResponse({ description: 'the round has already finished', type: ErrorDto })
  @ApiUnauthorizedResponse({ type: ErrorDto })
  cancelRound(
    @Param('id', new ZodPipe(IdSchema, 'round id')) id: string,
    @Headers('x-requested-by') who: string | undefined,
  ): Promise<AcceptedCommand> {
    return this.cancel.execute({ roundId: id, requestedBy: requestedBy(who) });
  }

  @Get()
  @ApiOperation({ summary: 'Rounds, newest first, with their current phase, step, loss and learning rate' })
  @ApiQuery({ name: 'limit', required: false, type: Number })
  @ApiOkResponse({ description: '{ rounds: Round[] }' })
  async listRounds(
    @Query(new ZodPipe(ListQuerySchema, 'query')) query: { limit: number },
  ): Promise<{ rounds: StoredRoundState[] }> {
    return { rounds: await this.queries.listRounds(query.limit) };
  }

  @Get(':id')
  @ApiOperation({ summary: 'One round with its step / loss / learning-rate series' })
  @ApiQuery({
    name: 'max_points',
    required: false,
    type: Number,
    description: 'thin the series to at most this many points',
  })
  @ApiOkResponse({
    description: '{ round, steps: [{ phase, step, loss, lr, tokens, ts_ms }], total_points }',
  })
  @ApiNotFoundResponse({ type: ErrorDto })
  getRound(
    @Param('id', new ZodPipe(IdSchema, 'round id')) id: string,
    @Query(new ZodPipe(RoundQuerySchema, 'query')) query: { max_points: number },
  ): Promise<RoundDetail> {
    return this.queries.round(id, query.max_points);
  }
}
