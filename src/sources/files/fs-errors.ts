/** The code of a Node.js file-system error ("ENOENT", "EACCES"), or the error as text. */
export function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : String(err);
}
