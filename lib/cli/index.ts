/**
 * `orthornn/cli`: the `orthornn` command as functions (main(argv), the commander program, the
 * training flags). Only re-exports. Needs the optional packages commander, cli-progress and
 * cli-table3 (npm i commander cli-progress cli-table3).
 */
export { main, program, addTrainOptions, trainOptionsOf } from './main';
export { parseOption, OPTIONS } from '../train/config';
export { sweep, expandGrid, summaryTable } from './sweep';
export type { SweepOptions, SweepRun } from './sweep';
