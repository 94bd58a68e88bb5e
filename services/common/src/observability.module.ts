import {
  Controller,
  DynamicModule,
  Get,
  Header,
  HttpException,
  HttpStatus,
  Inject,
  Injectable,
  Module,
} from '@nestjs/common';
import { collectDefaultMetrics, Registry } from 'prom-client';

export const METRICS_REGISTRY = Symbol('METRICS_REGISTRY');

/** A named readiness probe; returns a problem description, or null when healthy. */
export interface HealthCheck {
  name: string;
  check(): Promise<string | null>;
}

/** Health checks of a service; providers register themselves at construction. */
@Injectable()
export class HealthRegistry {
  private readonly checks: HealthCheck[] = [];
  register(check: HealthCheck): void {
    this.checks.push(check);
  }
  all(): readonly HealthCheck[] {
    return this.checks;
  }
}

@Controller()
class ObservabilityController {
  constructor(
    @Inject(METRICS_REGISTRY) private readonly registry: Registry,
    private readonly health: HealthRegistry,
  ) {}

  @Get('metrics')
  @Header('Content-Type', 'text/plain; version=0.0.4')
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  @Get('health')
  async healthStatus(): Promise<{ status: 'ok'; checks: Record<string, string> }> {
    const results = await Promise.all(
      this.health.all().map(async (c) => {
        try {
          return [c.name, (await c.check()) ?? 'ok'] as const;
        } catch (err) {
          return [c.name, (err as Error).message] as const;
        }
      }),
    );
    const checks = Object.fromEntries(results);
    if (results.some(([, v]) => v !== 'ok')) {
      throw new HttpException({ status: 'unhealthy', checks }, HttpStatus.SERVICE_UNAVAILABLE);
    }
    return { status: 'ok', checks };
  }
}

/**
 * `/metrics` (Prometheus) and `/health` for a service. The registry is per module instance so
 * two services in one test process do not collide on metric names.
 */
@Module({})
export class ObservabilityModule {
  static forService(service: string): DynamicModule {
    return {
      module: ObservabilityModule,
      global: true,
      controllers: [ObservabilityController],
      providers: [
        {
          provide: METRICS_REGISTRY,
          useFactory: () => {
            const registry = new Registry();
            registry.setDefaultLabels({ service });
            collectDefaultMetrics({ register: registry });
            return registry;
          },
        },
        HealthRegistry,
      ],
      exports: [METRICS_REGISTRY, HealthRegistry],
    };
  }
}
