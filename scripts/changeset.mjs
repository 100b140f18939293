#!/usr/bin/env node
// Runs the changesets CLI on Node 20. Its bin calls module.enableCompileCache(),
// which Node 20 lacks (the CLI declares Node >= 22.11); the CLI itself runs
// fine on 20, so we import it directly and skip the compile-cache call.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);
const entry = require.resolve('@changesets/cli');
await import(pathToFileURL(entry).href);
