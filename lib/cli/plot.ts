/** `orthornn plot`: the figures of a run folder. */
import { plotRun } from '../plot/index';

export async function plotCommand(runDir: string, flags: Record<string, unknown>): Promise<void> {
  const files = await plotRun(runDir, { format: flags.format as 'svg' | 'png', outDir: flags.out as string | undefined });
  for (const f of files) process.stdout.write(`${f}\n`);
}
