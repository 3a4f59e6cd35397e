/**
 * The trainer's entry point for a run's charts (src/train/trainer.ts calls writeRunPlots when a run
 * ends): it now writes the whole report, `<run>/report/` (PNG and SVG charts, summary.md). The chart
 * primitives live in chart.ts.
 */
export { writeRunReport as writeRunPlots, type RunReport as RunPlots, type RunReportOptions as RunPlotOptions } from './run_report.js';
