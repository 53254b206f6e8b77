// Run by `payhost adapter build` (host/src/builder/js.rs) from the
// toolchain directory, whose node_modules holds the pinned componentize-js:
//   node componentize.mjs ENTRY WIT WORLD OUT
// Every optional runtime feature is disabled, so the component imports
// only the contract (no WASI: no stdio, clocks, random, HTTP).
import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile } from 'node:fs/promises';

const [sourcePath, witPath, worldName, out] = process.argv.slice(2);
const { component } = await componentize({
  sourcePath,
  witPath,
  worldName,
  disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
});
await writeFile(out, component);
