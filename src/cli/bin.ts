#!/usr/bin/env node
/** The `simtrip` executable: runs the CLI and exits with its code once stdout has drained. */
import { main } from './main.js';

const code = await main(process.argv);
process.stdout.write('', () => process.exit(code));
