/**
 * The engine's lease tokens (EngineOptions.newLeaseToken) from the operating system's CSPRNG:
 * LEASE_TOKEN_BYTES random bytes each, read from a buffer of 1,024 tokens that is refilled when
 * used up, so a dispense costs neither a system call nor an allocation.
 */
import { randomFillSync } from "node:crypto";
import { LEASE_TOKEN_BYTES } from "./pool/leases.ts";

export function leaseTokenSource(): () => number {
  const buffer = Buffer.allocUnsafeSlow(1024 * LEASE_TOKEN_BYTES);
  let at = buffer.length;
  return () => {
    if (at === buffer.length) {
      randomFillSync(buffer);
      at = 0;
    }
    const token = buffer.readUIntBE(at, LEASE_TOKEN_BYTES);
    at += LEASE_TOKEN_BYTES;
    return token;
  };
}
