/** Types of variants/index.js, for the TypeScript smoke test. */
export interface Variant {
  id: string;
  file: string;
  label: string;
  ssekit?: boolean;
}
export declare const VARIANTS: Variant[];
export declare const CEILING: string;
export declare const NAIVE: string;
