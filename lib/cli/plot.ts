/** `orthornn plot`: the figures of a run folder. */
import { plotRun } from '../plot/index';

export async function makePlots(runDir: string, format: 'svg' | 'png', outDir?: string): Promise<string[]> {
  return plotRun(runDir, { format, outDir });
}

export async function plotCommand(runDir: string, flags: Record<string, unknown>): Promise<void> {
  const files = await makePlots(runDir, flags.format as 'svg' | 'png', flags.out as string | undefined);
  for (const f of files) process.stdout.write(`${f}\n`);
}
