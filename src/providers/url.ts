/**
 * Joins a pool's base URL and a provider path. `spec.baseURL` replaces the provider's API origin
 * (scheme://host[:port][/prefix]) and paths such as /v1/models are appended; a base URL that
 * already ends in the path's first segment (".../v1", as OpenAI SDK users write it) is not
 * doubled.
 */
export function providerUrl(base: string, path: string): URL {
  const url = new URL(base);
  const basePath = url.pathname.replace(/\/+$/, "");
  const [pathOnly = "", query = ""] = path.split("?", 2);
  const firstSegment = /^\/[^/]+/.exec(pathOnly)?.[0] ?? "";
  const rest =
    firstSegment && basePath.endsWith(firstSegment) ? pathOnly.slice(firstSegment.length) : pathOnly;
  url.pathname = `${basePath}${rest}`;
  if (query) url.search = query;
  return url;
}
