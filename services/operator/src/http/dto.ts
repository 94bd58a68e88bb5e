import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';

/**
 * OpenAPI descriptions of the bodies and replies. Validation itself is done by the zod schemas
 * next to each use case (http/zod.pipe.ts); these classes only document the shapes.
 */
export class TriggerRoundBodyDto {
  @ApiPropertyOptional({
    type: [String],
    example: ['games', 'steam'],
    description: 'Target domains (lowercase slugs); the trainer’s defaults when absent',
  })
  target_domains?: string[];

  @ApiPropertyOptional({ example: 'drift alert on games', maxLength: 500 })
  reason?: string;
}

export class PromoteAdapterBodyDto {
  @ApiPropertyOptional({ example: 'manual promotion after review', maxLength: 500 })
  reason?: string;
}

export class RollbackBodyDto {
  @ApiProperty({
    example: 'games',
    description: 'Target domain whose adapter is rolled back (the others keep theirs)',
  })
  domain!: string;

  @ApiPropertyOptional({
    description:
      'Adapter to switch the domain to (`base`: the base model alone); its previous adapter when absent',
  })
  to_adapter_id?: string;
}

export class AcceptedCommandDto {
  @ApiProperty({
    description: 'Id of the published command (for a trigger: the id the trainer gives the round)',
  })
  command_id!: string;

  @ApiProperty({ enum: ['trigger', 'cancel', 'promote', 'rollback'] })
  kind!: string;

  @ApiProperty({ example: 'cprec.round-commands.v1' })
  topic!: string;
}

export class ErrorDto {
  @ApiProperty({ example: 400 })
  statusCode!: number;

  @ApiProperty({ example: 'Bad Request' })
  error!: string;

  @ApiProperty({
    example: 'invalid body: target_domains.0: must be a lowercase slug of 1-64 characters [a-z0-9_-]',
  })
  message!: string;
}
