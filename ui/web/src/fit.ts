// Fitting text into a box: the largest font size at which a text fits, and
// the choice between every digit and a compact form. The plan is pure
// (tested with Vitest); fitText applies it to an element and checks it.

/** A text to show, with its width at a font size of 1px (text width is proportional to the font size). */
export interface Candidate {
  text: string;
  em: number;
}

export interface FitOptions {
  /** The largest font size wanted (px). */
  max: number;
  /** The smallest font size allowed (px); below it the text wraps rather than being cut. */
  min: number;
  /**
   * A candidate is taken when it fits at this size or larger; otherwise the
   * next one (the compact form) is tried, and if none reaches it, the one
   * that fits largest.
   */
  readable: number;
  /** Line height as a multiple of the font size, when the box's height bounds the text. */
  lineHeight: number;
}

export interface Plan {
  index: number; // of the chosen candidate
  size: number; // px, at least min
  wrap: boolean; // even at min it does not fit on one line
}

/** The font size at which a text of width em (per px) fits a box of width × height. */
export function sizeFor(em: number, width: number, height: number | undefined, o: Pick<FitOptions, "max" | "lineHeight">): number {
  let s = o.max;
  if (height !== undefined && height > 0) s = Math.min(s, height / o.lineHeight);
  if (em > 0) s = Math.min(s, width / em);
  return Math.max(0, Math.floor(s * 4) / 4);
}

/** Picks the first candidate that fits readably (or the one that fits largest) and its size. */
export function planFit(cands: Candidate[], width: number, height: number | undefined, o: FitOptions): Plan {
  if (cands.length === 0) return { index: 0, size: o.max, wrap: false };
  const sizes = cands.map((c) => sizeFor(c.em, width, height, o));
  let index = sizes.findIndex((s) => s >= Math.max(o.readable, o.min));
  if (index < 0) index = sizes.reduce((best, s, i) => (s > sizes[best] ? i : best), 0);
  const size = sizes[index];
  return size >= o.min ? { index, size, wrap: false } : { index, size: o.min, wrap: true };
}

/** What an element is given to fit: the texts in order of preference, and the sizes. */
export interface FitRequest {
  texts: string[]; // e.g. ["1,234,567", "1.23M"]; a label has one
  title?: string; // the exact value for a reader (title and aria-label), when it may be shortened
  max: number;
  min: number;
  readable: number;
  /** Bound the size by the box's height too (kiosk: the grid sets it). */
  useHeight: boolean;
  /** The size when even min does not fit on one line and the text wraps (default min). */
  wrapAt?: number;
}

/** Lets a name wrap after _ . : - (event type names have no spaces) rather than anywhere. */
function breakable(el: HTMLElement, text: string): void {
  const parts = text.split(/(?<=[_.:\/-])/);
  el.replaceChildren(...parts.flatMap((p, i) => (i ? [document.createElement("wbr"), p] : [p])));
}

const LINE_HEIGHT = 1.12;

/** The width per px of font size of el's text at the font size now set. */
function emWidth(el: HTMLElement, text: string, probe: number): number {
  el.textContent = text;
  const r = document.createRange();
  r.selectNodeContents(el);
  return r.getBoundingClientRect().width / probe;
}

/**
 * Shows the largest text of req that fits el at the largest size, never cut:
 * measured in the page, then checked (scrollWidth ≤ clientWidth) and shrunk
 * if the rounding of a real font disagrees with the plan.
 */
export function fitText(el: HTMLElement, req: FitRequest): Plan {
  el.classList.remove("fit-wrap");
  el.style.lineHeight = String(LINE_HEIGHT);
  const probe = 100;
  el.style.fontSize = `${probe}px`;
  const cands = req.texts.map((text) => ({ text, em: emWidth(el, text, probe) }));
  const width = el.clientWidth;
  const height = req.useHeight ? el.clientHeight : undefined;
  const plan = planFit(cands, width, height, { max: req.max, min: req.min, readable: req.readable, lineHeight: LINE_HEIGHT });
  el.textContent = cands[plan.index]?.text ?? "";
  let size = plan.size;
  el.style.fontSize = `${size}px`;
  while (!plan.wrap && el.scrollWidth > el.clientWidth && size > req.min) {
    size = Math.max(req.min, size - Math.max(0.5, size * 0.03));
    el.style.fontSize = `${size}px`;
  }
  if (el.scrollWidth > el.clientWidth) {
    el.classList.add("fit-wrap");
    breakable(el, el.textContent ?? "");
    plan.wrap = true;
    size = Math.max(size, req.wrapAt ?? req.min);
    el.style.fontSize = `${size}px`;
  }
  plan.size = size;
  if (req.title) {
    el.title = req.title;
    el.setAttribute("aria-label", req.title);
  } else {
    el.removeAttribute("title");
    el.removeAttribute("aria-label");
  }
  return plan;
}
