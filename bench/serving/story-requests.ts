import type { RankRequest } from '@cprec/training';

const ADJECTIVES = ['little', 'big', 'happy', 'red', 'shiny', 'brave', 'sleepy', 'funny', 'tiny', 'kind'];
const NOUNS = ['cat', 'dog', 'boat', 'bird', 'tree', 'ball', 'girl', 'boy', 'fish', 'cake', 'park', 'sun'];
const PLACES = ['in the park', 'at home', 'by the sea', 'in the sky', 'at school'];

/** Item `i` of a catalogue whose titles are in stories260K's vocabulary (the profiling probes' items). */
export function storyItem(i: number): { itemId: string; title: string } {
  return {
    itemId: `s${i}`,
    title: `The ${ADJECTIVES[i % 10]} ${NOUNS[(i * 7) % 12]} ${PLACES[(i * 3) % 5]}`,
  };
}

/** A serving request: 5 history items and 20 candidates, shifted by `offset` (distinct prompts). */
export function storyRequest(offset: number): RankRequest {
  return {
    domain: 'd',
    history: [0, 1, 2, 3, 4].map((i) => storyItem(i + offset)),
    candidates: Array.from({ length: 20 }, (_, i) => storyItem(i + 5 + offset)),
  };
}
