import { Inject, Injectable } from '@nestjs/common';
import { MutationGuard } from '@cprec/service-common';
import { OPERATOR_CONFIG, OperatorConfig } from '../config';

export { bearerToken, tokensEqual } from '@cprec/service-common';

/**
 * Guards the operator's mutating endpoints: the configured bearer token (OPERATOR_TOKEN) and JSON
 * bodies only (MutationGuard, shared with serving's rollback).
 */
@Injectable()
export class OperatorTokenGuard extends MutationGuard {
  constructor(@Inject(OPERATOR_CONFIG) config: Pick<OperatorConfig, 'OPERATOR_TOKEN'>) {
    super({
      token: config.OPERATOR_TOKEN,
      tokenVariable: 'OPERATOR_TOKEN',
      tokenName: 'operator token',
      realm: 'cprec-operator',
    });
  }
}
