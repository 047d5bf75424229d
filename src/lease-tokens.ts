/**
 * The engine's lease tokens (EngineOptions.newLeaseToken) from the operating system's CSPRNG:
 * 48 random bits each, read from a 6 KiB buffer that is refilled when used up, so a dispense
 * costs neither a system call nor an allocation.
 */
import { randomFillSync } from "node:crypto";

export function leaseTokenSource(): () => number {
  const buffer = Buffer.allocUnsafeSlow(6 * 1024);
  let at = buffer.length;
  return () => {
    if (at === buffer.length) {
      randomFillSync(buffer);
      at = 0;
    }
    const token = buffer.readUIntBE(at, 6);
    at += 6;
    return token;
  };
}
