import { Inject, Injectable } from '@nestjs/common';
import { MutationGuard } from '@cprec/service-common';
import { SERVING_CONFIG, ServingConfig } from './config';

/**
 * Guards serving's mutating endpoints (POST /v1/rollback): a bearer token — SERVING_TOKEN, else
 * the operator's OPERATOR_TOKEN (the same secret by default) — and JSON bodies only. With neither
 * variable set, rollbacks over HTTP are refused with 503; the operator API's rollback (a Kafka
 * command) still works.
 */
@Injectable()
export class ServingTokenGuard extends MutationGuard {
  constructor(@Inject(SERVING_CONFIG) config: Pick<ServingConfig, 'SERVING_TOKEN' | 'OPERATOR_TOKEN'>) {
    super({
      token: config.SERVING_TOKEN ?? config.OPERATOR_TOKEN,
      tokenVariable: 'SERVING_TOKEN (or OPERATOR_TOKEN)',
      tokenName: 'serving token',
      realm: 'cprec-serving',
    });
  }
}
