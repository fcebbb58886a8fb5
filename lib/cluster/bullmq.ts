/**
 * BullMQ, loaded on first use: it is an optional package (the job queue's commands need it,
 * the library and `orthornn train` do not), and its absence is an error naming what to install.
 */
import type * as BullMQ from 'bullmq';
import { isMissingPackage, optionalPackageError } from '../optional';

let loaded: typeof BullMQ | undefined;

export function bullmq(): typeof BullMQ {
  if (loaded) return loaded;
  try {
    loaded = require('bullmq') as typeof BullMQ;
  } catch (err) {
    if (isMissingPackage(err, 'bullmq')) throw optionalPackageError('the job queue (orthornn worker, sweep --queue)', ['bullmq']);
    throw err;
  }
  return loaded;
}
