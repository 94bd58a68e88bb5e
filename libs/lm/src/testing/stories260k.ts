import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

/** ../shared/models/stories260K next to the repository (read by path, never copied). */
export const STORIES260K_DIR = resolve(__dirname, '../../../../../shared/models/stories260K');
export const STORIES260K_CHECKPOINT = resolve(STORIES260K_DIR, 'stories260K.bin');
export const STORIES260K_TOKENIZER = resolve(STORIES260K_DIR, 'tok512.bin');

export function stories260kAvailable(): boolean {
  return existsSync(STORIES260K_CHECKPOINT) && existsSync(STORIES260K_TOKENIZER);
}

export const STORIES260K_MISSING = `stories260K not found at ${STORIES260K_DIR}: golden tests skipped (the model lives in ../shared/models and is never copied into the repo)`;

/** karpathy/llama2.c test_all.py expected output for `run stories260K.bin -z tok512.bin -t 0.0 -n 200` (SOURCE.md). */
export const GOLDEN_TEXT =
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.\n' +
  'Lily\'s mom said, "Lily, let\'s go to the park." Lily was sad and didn\'t know what to do. She said, "I want to play with your ball, but I can\'t find it."\n' +
  "Lily was sad and didn't know what to do. She said, \"I'm sorry, Lily. I didn't know what to do.\"\n" +
  "Lily didn't want to help her mom, so she";

export const GOLDEN_FIRST_40 = [
  403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410,
  408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385, 328, 432, 358, 394, 261, 370, 432, 352,
];
