// @ts-check
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

/** Modules that carry I/O or time: the pure protocol core must not import them (STYLE habit 1). */
const ioModules = ['net', 'tls', 'dns', 'dgram', 'http', 'https', 'http2', 'timers', 'timers/promises', 'child_process', 'cluster', 'worker_threads'];
const restrictedPaths = ioModules.flatMap((name) => [
  { name, message: 'The protocol core is pure: sockets, DNS, timers and processes live in src/node/.' },
  { name: `node:${name}`, message: 'The protocol core is pure: sockets, DNS, timers and processes live in src/node/.' },
]);
const clockMessage = 'Time is passed in (a Clock); the protocol core never reads the clock or starts timers.';

/** The pure core folders of every package. */
const pureCore = [
  '**/src/codec/**/*.ts',
  '**/src/server/**/*.ts',
  '**/src/client/**/*.ts',
  '**/src/sasl/**/*.ts',
];

export default tseslint.config(
  {
    ignores: ['**/dist/**', '**/dist-*/**', '**/node_modules/**', '**/.turbo/**', '**/coverage/**', '**/.readme-examples/**', '.tools/**'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: {
          allowDefaultProject: ['*.js', '*.mjs', 'scripts/*.mjs', 'bench/*.mjs'],
        },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/only-throw-error': 'error',
      eqeqeq: ['error', 'always'],
      'no-restricted-syntax': ['error', { selector: 'TSEnumDeclaration', message: 'Use a union of string literals.' }],
    },
  },
  {
    files: pureCore,
    rules: {
      'no-restricted-imports': ['error', { paths: restrictedPaths }],
      'no-restricted-globals': [
        'error',
        { name: 'setTimeout', message: clockMessage },
        { name: 'setInterval', message: clockMessage },
        { name: 'setImmediate', message: clockMessage },
        { name: 'clearTimeout', message: clockMessage },
        { name: 'clearInterval', message: clockMessage },
        { name: 'performance', message: clockMessage },
      ],
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: clockMessage },
        { object: 'process', property: 'hrtime', message: clockMessage },
      ],
    },
  },
  {
    files: ['**/test/**/*.ts', '**/*.test.ts', 'bench/**'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/unbound-method': 'off',
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { ...globals.node } },
  },
);
