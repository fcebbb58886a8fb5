#!/usr/bin/env node
/**
 * The `orthornn` executable. The command's own packages (commander, cli-progress, cli-table3)
 * are optional peer dependencies of orthornn, so that a library install stays small: when one is
 * missing this says which to install instead of failing with a stack.
 */
import { optionalPackageError } from './optional';

const CLI_PACKAGES = ['commander', 'cli-progress', 'cli-table3'];

const missing = CLI_PACKAGES.filter((name) => {
  try {
    require.resolve(name);
    return false;
  } catch {
    return true;
  }
});
if (missing.length) {
  process.stderr.write(`${optionalPackageError('the orthornn command', missing, CLI_PACKAGES).message}\n`);
  process.exitCode = 1;
} else {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  void (require('./cli/main') as typeof import('./cli/main')).main(process.argv);
}
