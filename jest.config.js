// Two tiers: unit specs live beside the code and need no servers; integration and e2e
// tests live in test/ and run against the real Kafka and ClickHouse started by infra/local/up.
const moduleNameMapper = {
  '^@cprec/service-common$': '<rootDir>/services/common/src',
  '^@cprec/service-common/(.*)$': '<rootDir>/services/common/src/$1',
  '^@cprec/contracts$': '<rootDir>/libs/contracts/src',
  '^@cprec/contracts/(.*)$': '<rootDir>/libs/contracts/src/$1',
  '^@cprec/clickhouse$': '<rootDir>/libs/clickhouse/src',
  '^@cprec/clickhouse/(.*)$': '<rootDir>/libs/clickhouse/src/$1',
  '^@cprec/messaging$': '<rootDir>/libs/messaging/src',
  '^@cprec/messaging/(.*)$': '<rootDir>/libs/messaging/src/$1',
  '^@cprec/datasets$': '<rootDir>/libs/datasets/src',
  '^@cprec/datasets/(.*)$': '<rootDir>/libs/datasets/src/$1',
  '^@cprec/corpus$': '<rootDir>/libs/corpus/src',
  '^@cprec/corpus/(.*)$': '<rootDir>/libs/corpus/src/$1',
  '^@cprec/lm$': '<rootDir>/libs/lm/src',
  '^@cprec/lm/(.*)$': '<rootDir>/libs/lm/src/$1',
  '^@cprec/training$': '<rootDir>/libs/training/src',
  '^@cprec/training/(.*)$': '<rootDir>/libs/training/src/$1',
  '^@cprec/sasrec$': '<rootDir>/libs/sasrec/src',
  '^@cprec/sasrec/(.*)$': '<rootDir>/libs/sasrec/src/$1',
  '^@cprec/metrics$': '<rootDir>/libs/metrics/src',
  '^@cprec/metrics/(.*)$': '<rootDir>/libs/metrics/src/$1',
  '^@cprec/artefacts$': '<rootDir>/libs/artefacts/src',
  '^@cprec/artefacts/(.*)$': '<rootDir>/libs/artefacts/src/$1',
};
const transform = { '^.+\\.ts$': ['ts-jest', { isolatedModules: true, diagnostics: false }] };
const common = {
  testEnvironment: 'node',
  globalSetup: '<rootDir>/scripts/jest-native-environment.ts',
  moduleFileExtensions: ['ts', 'js', 'json'],
  moduleNameMapper,
  transform,
};

module.exports = {
  // Known-slow unit suites first, so a cold perf cache (fresh clone) never leaves one for last.
  // A global option (Jest reads it only here, not per project); other files keep Jest's order.
  testSequencer: '<rootDir>/scripts/jest-heavy-first-sequencer.js',
  projects: [
    {
      ...common,
      displayName: 'unit',
      roots: [
        '<rootDir>/libs',
        '<rootDir>/services',
        '<rootDir>/cli',
        '<rootDir>/bench',
        '<rootDir>/scripts',
      ],
      testMatch: ['**/*.spec.ts'],
    },
    {
      ...common,
      displayName: 'integration',
      roots: ['<rootDir>/test'],
      testMatch: ['**/*.test.ts'],
      // The failover tests need the cluster profile: their own project (npm run test:cluster).
      testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/cluster/'],
      setupFilesAfterEnv: ['<rootDir>/test/support/jest.setup.ts'],
    },
    {
      ...common,
      displayName: 'cluster',
      roots: ['<rootDir>/test/cluster'],
      testMatch: ['**/*.test.ts'],
      setupFilesAfterEnv: ['<rootDir>/test/support/jest.setup.ts'],
    },
  ],
};
