import { join } from 'node:path';
import { interactionFromEvent, ItemPool, type Interaction } from '@cprec/corpus';
import { onlyUsers, openDataset, planLiveStream } from '@cprec/datasets';
import type { ContinualConfig } from './config';
import { buildWindowedData, makeWindows, type DomainCatalogue, type WindowedData } from './windows';

export const startMsOf = (c: ContinualConfig): number => Date.parse(`${c.startDate}T00:00:00Z`);

/**
 * The stream the experiment cuts into windows — the same one `npm start` streams: the linked
 * folder's titled domains, users active in `minDomains`+ of them (optionally a deterministic
 * sample), every interaction in event-time order — and its windowed samples and cases.
 */
export async function buildContinualData(
  config: ContinualConfig,
  log: (m: string) => void,
): Promise<WindowedData & { users: number }> {
  const dataset = openDataset({
    path: join(config.dataDir, config.source.folder),
    domains: config.source.domains,
  });
  const plan = await planLiveStream([dataset], { minDomains: config.minDomains, maxUsers: config.maxUsers });
  const titles = new Map<string, string>();
  const poolIds = new Map<string, string[]>();
  for await (const item of dataset.items()) {
    titles.set(`${item.domain}/${item.item_id}`, item.title);
    const ids = poolIds.get(item.domain) ?? [];
    ids.push(item.item_id);
    poolIds.set(item.domain, ids);
  }
  const catalogue: DomainCatalogue = {
    pools: new Map([...poolIds].map(([d, ids]) => [d, new ItemPool(d, ids)])),
    titleOf: (domain, itemId) => titles.get(`${domain}/${itemId}`),
  };
  const interactions: Interaction[] = [];
  for await (const e of onlyUsers(dataset, plan.users).interactions())
    interactions.push(interactionFromEvent(e));
  log(
    `  stream: ${plan.userCount} users, ${interactions.length} interactions ${JSON.stringify(plan.interactions)}`,
  );
  const windows = makeWindows(startMsOf(config), config.windowDays, config.windows);
  const data = buildWindowedData(interactions, windows, catalogue, {
    protocol: config.protocol,
    dataSeed: config.dataSeed,
    targets: config.targets,
    casesPerDomain: config.casesPerDomain,
    initialSamples: config.cpt.initialSamples,
    samplesPerWindow: config.cpt.samplesPerWindow,
    annealSamples: config.cpt.annealSteps * config.cpt.batchSize,
    sftSamples: config.sft.samples,
  });
  for (const s of data.stats)
    log(
      `  window ${s.window} ${s.label}: ${s.users} users, ${JSON.stringify(s.interactions)}, ${s.domainPositions} next-item positions, evaluable ${JSON.stringify(s.evaluable)}`,
    );
  for (let v = 1; v < data.cases.length; v++)
    for (const domain of config.targets)
      if ((data.cases[v]![domain] ?? []).length === 0)
        throw new Error(`window ${v} (${data.windows[v]!.label}) has no evaluation case in ${domain}`);
  return { ...data, users: plan.userCount };
}
