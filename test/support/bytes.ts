/** `n` bytes counting up (mod 256) from `from`, so order and content can be checked. */
export function bytes(n: number, from = 0): Buffer {
  return Buffer.from(Array.from({ length: n }, (_, i) => (from + i) % 256));
}
