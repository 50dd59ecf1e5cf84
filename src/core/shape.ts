// Declared shapes of data that arrives from elsewhere (protocol messages and their replies): each
// shape checks a value and says exactly what is wrong with it, by path. A message is checked
// against its shape before any handler touches it, so a handler never meets a field of the wrong
// type. Pure, and cheap enough for the hot path: a few typeof checks per field, no allocation when
// the value is good.

import { MAX_TOKEN } from './hash';
import { isVersion } from './hlc';
import { isStoredRecord } from './record';

/** Returns undefined when `v` fits, else what is wrong with it (prefixed by `path`). */
export type Shape = (v: unknown, path: string) => string | undefined;

export const string =
  (maxLength = 1 << 20): Shape =>
  (v, path) =>
    typeof v !== 'string' ? `${path}: must be a string` : v.length > maxLength ? `${path}: longer than ${maxLength}` : undefined;

export const boolean: Shape = (v, path) => (typeof v === 'boolean' ? undefined : `${path}: must be true or false`);

export const integer =
  (min = 0, max = Number.MAX_SAFE_INTEGER): Shape =>
  (v, path) =>
    Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max
      ? undefined
      : `${path}: must be an integer from ${min} to ${max}`;

/** A ring token: an unsigned 32-bit integer. */
export const token: Shape = integer(0, MAX_TOKEN);

export const version: Shape = (v, path) => (isVersion(v) ? undefined : `${path}: must be a version {wallMs, counter, nodeId}`);

export const record: Shape = (v, path) =>
  isStoredRecord(v) ? undefined : `${path}: must be a record {version, value[, expiresAt]} or {version, deleted: true}`;

export function optional(shape: Shape): Shape & { optional: true } {
  const s = ((v: unknown, path: string) => (v === undefined ? undefined : shape(v, path))) as Shape & { optional: true };
  s.optional = true;
  return s;
}

export function array(of: Shape, maxItems: number): Shape {
  return (v, path) => {
    if (!Array.isArray(v)) return `${path}: must be an array`;
    if (v.length > maxItems) return `${path}: more than ${maxItems} items`;
    for (let i = 0; i < v.length; i++) {
      const p = of(v[i], `${path}[${i}]`);
      if (p) return p;
    }
    return undefined;
  };
}

export function tuple(...items: Shape[]): Shape {
  return (v, path) => {
    if (!Array.isArray(v) || v.length !== items.length) return `${path}: must be an array of ${items.length}`;
    for (let i = 0; i < items.length; i++) {
      const p = (items[i] as Shape)(v[i], `${path}[${i}]`);
      if (p) return p;
    }
    return undefined;
  };
}

/** An object with these fields (others are allowed and ignored: a newer peer may send more). */
export function object(fields: Record<string, Shape>): Shape {
  const entries = Object.entries(fields);
  return (v, path) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return `${path}: must be an object`;
    const o = v as Record<string, unknown>;
    for (const [name, shape] of entries) {
      const p = shape(o[name], path === '' ? name : `${path}.${name}`);
      if (p) return p;
    }
    return undefined;
  };
}

/** One of several literal values. */
export function oneOf(...values: readonly unknown[]): Shape {
  return (v, path) => (values.includes(v) ? undefined : `${path}: must be one of ${values.map((x) => JSON.stringify(x)).join(', ')}`);
}

/** Anything (the field is checked where it is used, or not used at all). */
export const any: Shape = () => undefined;
