import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { useJsonBodyChecks } from '@cprec/service-common';
import type { OperatorConfig } from './config';

/**
 * The dashboard's files: next to the sources in development (ts-node), or found from the
 * working directory when running the compiled `dist/` (tsc does not copy non-TS files).
 */
export function dashboardDir(config: Pick<OperatorConfig, 'OPERATOR_DASHBOARD_DIR'>): string {
  const candidates = [
    config.OPERATOR_DASHBOARD_DIR,
    resolve(__dirname, '..', 'dashboard'),
    resolve(process.cwd(), 'services', 'operator', 'dashboard'),
  ].filter((d): d is string => d !== undefined);
  const found = candidates.find((d) => existsSync(join(d, 'index.html')));
  if (found === undefined) throw new Error(`dashboard files not found (looked in ${candidates.join(', ')})`);
  return found;
}

/** uPlot's browser build, served from node_modules so the dashboard needs no CDN and no build step. */
export function uplotDir(): string {
  return dirname(require.resolve('uplot/dist/uPlot.iife.min.js'));
}

/** The shared JSON body checks, OpenAPI at /docs (UI) and /docs-json, and the dashboard at /. */
export function configureOperatorApp(app: NestExpressApplication, config: OperatorConfig): void {
  useJsonBodyChecks(app);
  const document = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('cprec operator')
      .setDescription(
        'Trigger and cancel CPT rounds, inspect adapters and evaluations, promote or roll back, and read the HR@1 drift series. ' +
          'Mutations need `Authorization: Bearer <OPERATOR_TOKEN>`; reads are open (the server binds 127.0.0.1 by default).',
      )
      .setVersion('1')
      .addBearerAuth()
      .build(),
  );
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs-json' });
  app.useStaticAssets(uplotDir(), { prefix: '/vendor/uplot/', index: false });
  app.useStaticAssets(dashboardDir(config), { index: 'index.html' });
}
