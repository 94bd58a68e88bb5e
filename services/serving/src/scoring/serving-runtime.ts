import { defaultPromptTokens } from '@cprec/lm';
import { RecommenderRuntime, type BaseModel, type LoadedRecommender } from '@cprec/training';
import type { ServingConfig } from '../config';

/** The recommender runtime serving scores with, from its configuration (workers and in-process alike). */
export function servingRuntime(base: BaseModel, config: ServingConfig): RecommenderRuntime {
  return RecommenderRuntime.fromBase(base, {
    budget: {
      // 0 follows the base's context, as the trainer resolved it for training.
      maxTokens:
        config.SERVING_MAX_TOKENS > 0
          ? config.SERVING_MAX_TOKENS
          : defaultPromptTokens(base.weights.config.maxSeqLen),
      maxTitleTokens: config.SERVING_MAX_TITLE_TOKENS,
    },
    mergeLora: config.SERVING_MERGE_LORA === 1,
    maxRowsPerForward: config.SERVING_MAX_ROWS_PER_FORWARD,
  });
}

/** Builds the model of a verified adapter directory (null = the base alone) and smoke-tests it. */
export function loadSmokeTested(
  runtime: RecommenderRuntime,
  adapterId: string,
  dir: string | null,
): LoadedRecommender {
  const model = dir === null ? runtime.loadBase() : runtime.load(dir, { adapterId });
  try {
    model.smokeTest();
  } catch (err) {
    model.dispose();
    throw err;
  }
  return model;
}
