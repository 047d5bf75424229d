/**
 * Confinement of the proxy's forwarded path: what reaches the provider is the pool's base URL
 * path plus the caller's rest-of-path, and nothing a caller writes may step outside that base
 * path. A caller allowed to use one pool must not reach another deployment behind the same
 * gateway (an Azure-style or gateway baseURL with a path prefix) with that pool's key.
 *
 * WHATWG URL parsing (what undici and the providers' servers apply) removes `.` and `..`
 * segments, also when written `%2e`, and treats `\` as `/` in http(s) URLs; servers and gateways
 * may decode `%2f` and `%5c` into separators. So a rest-of-path holding any of these is refused
 * outright, before any key is picked, rather than normalised into something the caller did not
 * write.
 */
import { KeyPoolError } from "../server/errors.ts";

/** Why a rest-of-path is refused, for the error message; undefined when it is fine. */
export function pathProblem(path: string): string | undefined {
  if (path.includes("\\")) return "a backslash";
  for (const segment of path.split("/")) {
    if (!segment.includes("%")) {
      if (segment === "." || segment === "..") return `a "${segment}" segment`;
      continue;
    }
    let decoded: string;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      return "a broken percent-encoding";
    }
    if (decoded === "." || decoded === "..") return `a "${segment}" segment`;
    if (decoded.includes("/")) return "an encoded slash (%2F)";
    if (decoded.includes("\\")) return "an encoded backslash (%5C)";
  }
  return undefined;
}

/** The rest-of-path, when a caller may send it; else an invalid_path error (400). */
export function confinedPath(path: string): string {
  const problem = pathProblem(path);
  if (problem) {
    throw new KeyPoolError(
      "invalid_path",
      `The proxied path has ${problem}: paths under /proxy/{namespace}/{pool}/ are sent as written, below the pool's base URL, and may not hold dot segments, backslashes or encoded slashes`,
    );
  }
  return path;
}

/** Whether `url` is at or below the base URL's path (the check after joining, belt and braces). */
export function isWithinBase(url: URL, base: string): boolean {
  const basePath = new URL(base).pathname.replace(/\/+$/, "");
  return url.pathname === basePath || url.pathname.startsWith(`${basePath}/`);
}
