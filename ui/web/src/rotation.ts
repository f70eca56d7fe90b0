// Rotation for unattended screens, as Grafana playlists do:
// ?rotate=24h,7d,30d&every=20s cycles the ranges, and ?type=a,b (with or
// without rotate) cycles event types, every range with every type. Pure:
// tested with Vitest.
import { isPreset, type PresetId } from "./ranges";

export interface Step {
  preset?: PresetId; // undefined: the view's own range
  type?: string; // undefined: every type
}

export interface Rotation {
  steps: Step[];
  everyMs: number;
}

export const DEFAULT_EVERY_MS = 30_000;
export const MIN_EVERY_MS = 5_000;
export const MAX_EVERY_MS = 3_600_000;
const MAX_STEPS = 50;
const typeName = /^[a-z0-9_.:-]{1,100}$/;

/** "20s", "1m", "90s", "1m30s", or a bare number of seconds; undefined when unreadable. */
export function parseEvery(s: string): number | undefined {
  const t = s.trim();
  if (/^\d{1,5}$/.test(t)) return Number(t) * 1000;
  const m = /^(?:(\d{1,4})h)?(?:(\d{1,5})m)?(?:(\d{1,5})s)?$/.exec(t);
  if (!m || t === "") return undefined;
  return ((Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0)) * 60 + Number(m[3] ?? 0)) * 1000;
}

/** The rotation a URL asks for, or undefined when it asks for none (fewer than two steps). */
export function parseRotation(q: URLSearchParams): Rotation | undefined {
  const uniq = <T,>(xs: T[]) => [...new Set(xs)];
  const presets = uniq((q.get("rotate") ?? "").split(",").map((s) => s.trim()).filter(isPreset));
  const types = uniq(q.getAll("type").flatMap((s) => s.split(",")).map((s) => s.trim()).filter((s) => typeName.test(s)));
  const ranges: (PresetId | undefined)[] = presets.length ? presets : [undefined];
  const kinds: (string | undefined)[] = types.length ? types : [undefined];
  const steps: Step[] = [];
  for (const preset of ranges) for (const type of kinds) if (steps.length < MAX_STEPS) steps.push({ preset, type });
  if (steps.length < 2) return undefined;
  const every = parseEvery(q.get("every") ?? "");
  const everyMs = every === undefined ? DEFAULT_EVERY_MS : Math.min(MAX_EVERY_MS, Math.max(MIN_EVERY_MS, every));
  return { steps, everyMs };
}

/** The step shown after the current one. */
export function nextStep(r: Rotation, index: number): number {
  return (index + 1) % r.steps.length;
}

/** The step shown at elapsedMs after the rotation started (for a screen that slept). */
export function stepAt(r: Rotation, elapsedMs: number): number {
  return Math.floor(Math.max(0, elapsedMs) / r.everyMs) % r.steps.length;
}
