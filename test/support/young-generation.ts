/**
 * V8's young generation as a process starts (two semi-spaces of 1–2 MiB), before it was ever
 * grown: where a forwarding process keeps it (cli/gc-tuning.ts). Grown, it reaches 32 MiB.
 */
export const INITIAL_YOUNG_GENERATION_BYTES = 4 * 1024 * 1024;
