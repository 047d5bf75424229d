/** Request bodies: parsed with zod at the edge; a failure names the field. */
import type { z } from "zod";
import { fieldPath } from "../api/parse.ts";
import { KeyPoolError } from "./errors.ts";

/** Parses a JSON body with a zod schema; the error names the field. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new KeyPoolError(
      "invalid_request",
      `${fieldPath(issue?.path ?? [])}: ${issue?.message ?? "invalid"}`,
    );
  }
  return parsed.data;
}
