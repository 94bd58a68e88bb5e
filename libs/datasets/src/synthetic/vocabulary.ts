/**
 * Words for synthetic item titles. Each theme (latent topic) has its own adjectives and nouns,
 * shared by every domain, so a title carries its topic in text ("Rose Petal Face Serum" and
 * "Blossom Garden Quest" are both floral) and a text model can transfer taste across domains;
 * each domain adds its own product nouns so titles also say which catalogue they come from.
 */
export interface Theme {
  name: string;
  adjectives: readonly string[];
  nouns: readonly string[];
}

export const THEMES: readonly Theme[] = [
  {
    name: 'space',
    adjectives: ['Cosmic', 'Stellar', 'Lunar', 'Astral', 'Orbital', 'Nova'],
    nouns: ['Galaxy', 'Nebula', 'Comet', 'Starlight', 'Eclipse', 'Meteor'],
  },
  {
    name: 'ocean',
    adjectives: ['Coral', 'Azure', 'Tidal', 'Marine', 'Deepwater', 'Pearl'],
    nouns: ['Reef', 'Wave', 'Lagoon', 'Harbor', 'Tide', 'Abyss'],
  },
  {
    name: 'forest',
    adjectives: ['Wild', 'Mossy', 'Evergreen', 'Cedar', 'Fern', 'Woodland'],
    nouns: ['Grove', 'Timber', 'Acorn', 'Pine', 'Thicket', 'Trail'],
  },
  {
    name: 'fire',
    adjectives: ['Crimson', 'Blazing', 'Molten', 'Ember', 'Scarlet', 'Volcanic'],
    nouns: ['Flame', 'Inferno', 'Phoenix', 'Ash', 'Dragon', 'Cinder'],
  },
  {
    name: 'city',
    adjectives: ['Neon', 'Urban', 'Electric', 'Chrome', 'Midnight', 'Metro'],
    nouns: ['Skyline', 'Circuit', 'Avenue', 'Pulse', 'Signal', 'Grid'],
  },
  {
    name: 'floral',
    adjectives: ['Rose', 'Blossom', 'Lavender', 'Peony', 'Jasmine', 'Lilac'],
    nouns: ['Petal', 'Garden', 'Bloom', 'Meadow', 'Orchid', 'Bouquet'],
  },
  {
    name: 'arctic',
    adjectives: ['Frost', 'Glacial', 'Polar', 'Snowy', 'Icy', 'Boreal'],
    nouns: ['Tundra', 'Blizzard', 'Iceberg', 'Aurora', 'Summit', 'Crystal'],
  },
  {
    name: 'vintage',
    adjectives: ['Classic', 'Antique', 'Golden', 'Heritage', 'Royal', 'Retro'],
    nouns: ['Legacy', 'Crown', 'Manor', 'Relic', 'Chronicle', 'Empire'],
  },
];

export interface DomainVocabulary {
  /** Product nouns that end a title. */
  products: readonly string[];
  /** How the three parts form a title. */
  template: (adjective: string, noun: string, product: string) => string;
}

const plain = (adjective: string, noun: string, product: string): string => `${adjective} ${noun} ${product}`;

export const DOMAIN_VOCABULARIES: Readonly<Record<string, DomainVocabulary>> = {
  games: {
    products: [
      'Racer',
      'Quest',
      'Legends',
      'Tactics',
      'Arena',
      'Odyssey',
      'Saga',
      'Commander',
      'Defenders',
      'Rush',
    ],
    template: plain,
  },
  beauty: {
    products: [
      'Face Serum',
      'Lip Balm',
      'Eye Cream',
      'Body Lotion',
      'Hair Mask',
      'Nail Polish',
      'Eau de Parfum',
      'Cleansing Gel',
      'Night Cream',
      'Bath Salts',
    ],
    template: plain,
  },
  books: {
    products: [
      'Chronicles',
      'Mysteries',
      'Diaries',
      'Poems',
      'Letters',
      'Tales',
      'Secrets',
      'Almanac',
      'Cookbook',
      'Field Guide',
    ],
    template: (adjective, noun, product) => `The ${adjective} ${noun} ${product}`,
  },
  toys: {
    products: [
      'Building Set',
      'Plush',
      'Puzzle',
      'Play Tent',
      'Kite',
      'Board Game',
      'Action Figure',
      'Train Set',
      'Yo-Yo',
      'Marble Run',
    ],
    template: plain,
  },
  sports: {
    products: [
      'Running Shoes',
      'Yoga Mat',
      'Water Bottle',
      'Backpack',
      'Tennis Racket',
      'Cycling Jersey',
      'Ski Goggles',
      'Camping Lantern',
      'Hiking Poles',
      'Swim Cap',
    ],
    template: plain,
  },
};

export const SYNTHETIC_DOMAINS: readonly string[] = Object.keys(DOMAIN_VOCABULARIES);
